"""Commands on backups: inspect (what a backup is, --verify reads every block) and repro (start
the Postgres a backup came from, restored)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from provisioner.cli.app import (
    RuntimeOption,
    ShowPassword,
    app,
    reports_errors,
)
from provisioner.cli.output import (
    print_connection,
)
from provisioner.errors import (
    NamesVersionSetting,
    SeedError,
    UsageError,
)
from provisioner.terminal import say

if TYPE_CHECKING:
    from provisioner.postgres.dumpfile import DumpInfo


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
    print_connection(env, show_password, as_json)
    say(f"it stays up; remove it with: envctl down {backup}")
    if argv:
        with deferred_signals():
            result = run_suite(argv, cwd=Path.cwd(), env=env.env)
        raise typer.Exit(result.exit_code)
