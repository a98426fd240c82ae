"""`envctl db new|list|drop`: databases cloned from a running environment's seeded template."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from provisioner.cli.app import (
    FormatOption,
    ProfileArg,
    ShowPassword,
    app,
    reports_errors,
)
from provisioner.cli.output import (
    check_format,
    echo_variables,
)
from provisioner.cli.targets import (
    running_with_profile,
)
from provisioner.errors import (
    UsageError,
)
from provisioner.terminal import say

if TYPE_CHECKING:
    pass


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
    check_format(fmt)
    running = running_with_profile(profile)
    clone = running.clone_database(name)
    echo_variables(clone.env, running.password, fmt, show_password)
    say(f"cloned the seeded template into {name}")


@db_app.command("drop")
@reports_errors
def db_drop(
    profile: ProfileArg,
    names: Annotated[list[str], typer.Argument(help="Clones to drop (`--all`: every one).")] = [],  # noqa: B006
    every: Annotated[bool, typer.Option("--all", help="Drop every clone.")] = False,
) -> None:
    """Drop clones made by `envctl db new` (or the pytest plugin); nothing else."""
    running = running_with_profile(profile)
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
    running = running_with_profile(profile)
    clones = running.clones()
    if as_json:
        typer.echo(json.dumps([{"name": n, "bytes": b} for n, b in clones], indent=2))
        return
    for name, size in clones:
        typer.echo(f"{name}\t{size / 1024 / 1024:.1f} MB")
    if not clones:
        say("no clones: `envctl db new PROFILE NAME` makes one")
