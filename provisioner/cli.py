"""The `envctl` command: parses arguments, calls the core, maps errors to exit codes."""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from provisioner.errors import EXIT_USER_ERROR, EnvctlError, NotRunningError, UsageError

app = typer.Typer(
    name="envctl",
    help="Declarative, disposable Postgres test environments: a YAML profile in, "
    "a ready database and a matching .env.test out.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
F = TypeVar("F", bound=Callable[..., Any])

ProfileArg = Annotated[Path, typer.Argument(help="The profile, e.g. profiles/quickstart.yaml.")]
RuntimeOption = Annotated[
    str | None,
    typer.Option("--runtime", help="auto, docker or native (default: the profile's, or auto)."),
]
ShowPassword = Annotated[
    bool, typer.Option("--show-password", help="Print the password instead of ****.")
]


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    """A progress or result line for people (stderr, so stdout stays clean for programs)."""
    _console().print(message, markup=False)


def reports_errors(func: F) -> F:
    """Print envctl's own errors as one line plus a hint and exit with their code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EnvctlError as exc:
            console = _console()
            console.print(f"error: {exc.message}", style="bold red", markup=False)
            if exc.hint:
                console.print(f"hint: {exc.hint}", style="yellow", markup=False)
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
    from provisioner.profile import load_profile

    for path in profiles:
        profile = load_profile(path)
        pg = profile.postgres
        say(
            f"ok: {path} (name {profile.name}, Postgres {pg.version}, port {pg.port}, "
            f"ssl {pg.ssl.mode}, image {pg.resolved_image()})"
        )


@app.command()
@reports_errors
def up(
    profile: ProfileArg, show_password: ShowPassword = False, runtime: RuntimeOption = None
) -> None:
    """Start the environment, wait until it accepts connections, write the env file."""
    from provisioner.environment import up as start
    from provisioner.profile import load_profile
    from provisioner.signals import deferred_signals

    loaded = load_profile(profile)
    with deferred_signals():
        env = start(loaded, mode="up", notify=say, runtime_override=runtime)
    _print_connection(env, show_password)
    say(f"remove it with: envctl down {profile}")


@app.command()
@reports_errors
def down(
    profile: Annotated[
        str, typer.Argument(help="The profile, or an environment id from `envctl status`.")
    ],
) -> None:
    """Remove the environment and restore the env file that was there before."""
    from provisioner.environment import down as remove
    from provisioner.signals import deferred_signals

    env_id = _env_id_of(profile)
    with deferred_signals():
        removed = remove(env_id)
    if removed:
        for item in removed:
            say(f"removed {item}" if not item.startswith("restored") else item)
    else:
        say(f"no environment for {profile} is up: nothing to remove")


def _env_id_of(target: str) -> str:
    from provisioner.profile import load_profile

    path = Path(target)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return load_profile(path).env_id
    return target


@app.command()
@reports_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """List the environments envctl owns."""
    from provisioner.environment import is_orphan
    from provisioner.runtime.select import available_runtimes
    from provisioner.state import all_env_ids, load_record

    found = {env.env_id: env for rt in available_runtimes() for env in rt.environments()}
    rows = []
    for env_id in sorted(set(found) | set(all_env_ids())):
        record = load_record(env_id)
        runtime_env = found.get(env_id)
        rows.append(
            {
                "id": env_id,
                "name": record.name
                if record
                else (runtime_env.labels.get("dev.envctl.name", "") if runtime_env else ""),
                "profile": record.profile if record else None,
                "runtime": record.runtime if record else "docker",
                "mode": record.mode if record else "unknown",
                "status": runtime_env.status if runtime_env else "gone",
                "orphan": bool(record and is_orphan(record)) or record is None,
                "port": record.connection.get("port") if record and record.connection else None,
                "age_seconds": round(time.time() - record.created) if record else None,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        say("no environments")
        return
    from rich.table import Table

    table = Table("id", "runtime", "mode", "status", "port", "profile")
    for row in rows:
        status_text = str(row["status"]) + (" (orphan)" if row["orphan"] else "")
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
def env(
    profile: ProfileArg,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="dotenv, json or shell (export lines).")
    ] = "dotenv",
    show_password: ShowPassword = False,
) -> None:
    """Print the variables of a running environment."""
    from provisioner.envfile import format_env
    from provisioner.environment import find
    from provisioner.profile import load_profile

    if fmt not in ("dotenv", "json", "shell"):
        raise UsageError(f"unknown format '{fmt}'", hint="use dotenv, json or shell")
    loaded = load_profile(profile)
    running = find(loaded)
    if running is None:
        raise NotRunningError(
            f"no environment for {profile} is up", hint=f"start it with `envctl up {profile}`"
        )
    variables = running.env if show_password else _masked(running.env, running.password)
    typer.echo(format_env(variables, fmt), nl=False)


def _masked(variables: dict[str, str], password: str) -> dict[str, str]:
    from urllib.parse import quote

    secrets = {password, quote(password, safe="")}
    out = {}
    for key, value in variables.items():
        for secret in secrets:
            value = value.replace(secret, "****")
        out[key] = value
    return out


@app.command(context_settings={"allow_interspersed_args": False})
@reports_errors
def run(
    profile: ProfileArg,
    command: Annotated[
        list[str] | None, typer.Argument(help="The suite to run (after --); default test.command.")
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the environment up afterwards for debugging.")
    ] = False,
    runtime: RuntimeOption = None,
) -> None:
    """Bring the environment up, run the suite against it, tear it all down."""
    from provisioner.environment import environment
    from provisioner.profile import load_profile
    from provisioner.runner import check_command, command_argv, run_suite
    from provisioner.signals import deferred_signals

    loaded = load_profile(profile)
    if command and command[0] == "--":
        command = command[1:]
    argv = command_argv(command) if command else None
    if argv is None and loaded.test.command is not None:
        argv = command_argv(loaded.test.command)
    if not argv:
        raise UsageError(
            f"{profile}: no test command", hint="set test.command or pass one: envctl run P -- CMD"
        )
    check_command(argv, loaded.workdir)
    with (
        deferred_signals(),
        environment(loaded, notify=say, keep=keep, runtime_override=runtime) as running,
    ):
        say(f"running: {' '.join(argv)}")
        result = run_suite(
            argv,
            cwd=loaded.workdir,
            env={**running.env, **loaded.test.env},
            timeout=loaded.test.timeout,
        )
        verdict = "passed" if result.exit_code == 0 else f"failed (exit code {result.exit_code})"
        say(f"suite {verdict} in {result.seconds:.1f}s")
        if keep:
            _print_connection(running, show_password=False)
            say(f"kept; remove it with: envctl down {profile}")
    raise typer.Exit(result.exit_code)


def _print_connection(env: Any, show_password: bool) -> None:
    url = env.url if show_password else _masked({"u": env.url}, env.password)["u"]
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
        sys.exit(EXIT_USER_ERROR + 128)
