"""The `envctl` application: the typer app, and envctl's errors turned into one line, a hint and
an exit code. The lines themselves are printed by `provisioner.terminal`, which the console
script's `validate` without typer shares."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from provisioner.errors import (
    EXIT_INTERRUPTED,
    EnvctlError,
)
from provisioner.terminal import configure_logging, exit_process, print_error, say

if TYPE_CHECKING:
    pass


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


def reports_errors(func: F) -> F:
    """Print envctl's own errors as one line plus a hint and exit with their code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EnvctlError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show what envctl does.")
    ] = False,
) -> None:
    configure_logging(verbose)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        say("interrupted; `envctl gc` removes anything left behind")
        exit_process(EXIT_INTERRUPTED)
    except SystemExit as done:
        exit_process(done.code)
    exit_process(0)
