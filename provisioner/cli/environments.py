"""Commands on one environment: up, down, status, gc, env, reset, dump."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from provisioner.cli.app import (
    FormatOption,
    ProfileArg,
    RuntimeOption,
    ShowPassword,
    VersionOption,
    app,
    reports_errors,
)
from provisioner.cli.output import (
    check_format,
    echo_variables,
    export_to_github,
    print_connection,
)
from provisioner.cli.targets import (
    env_id_of,
    running_environment,
    with_version,
)
from provisioner.errors import (
    UsageError,
)
from provisioner.terminal import say, stderr_console

if TYPE_CHECKING:
    pass


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

    loaded = with_version(load_profile(profile), postgres_version)
    with deferred_signals():
        env = start(loaded, mode="up", notify=say, runtime_override=runtime)
    print_connection(env, show_password, as_json)
    say(f"remove it with: envctl down {profile}")
    export_to_github(env)


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

    env_id = env_id_of(profile)
    with deferred_signals():
        removed = remove(env_id)
    if removed:
        for item in removed:
            say(item if item.startswith(("restored ", "removed ")) else f"removed {item}")
    else:
        say(f"no environment for {profile} is up: nothing to remove")


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
    stderr_console().print(table)


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
    check_format(fmt)
    running = running_environment(profile)
    echo_variables(running.env, running.password, fmt, show_password)
    ssl = running.connection.ssl_parameters()
    say("ssl: " + ", ".join(f"{key} {value}" for key, value in ssl.items()))


@app.command()
@reports_errors
def reset(profile: ProfileArg) -> None:
    """Put the running environment's database back to its seeded state (no re-restore)."""
    from provisioner.environments import reset as reset_env

    seconds = reset_env(running_environment(profile))
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
    written = dump_env(running_environment(profile), output, fmt)
    say(f"wrote {written} ({written.stat().st_size} bytes, {fmt} format)")
