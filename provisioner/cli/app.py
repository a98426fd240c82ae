"""The `envctl` application: the typer app, how its commands print, and how envctl's errors
become one line, a hint and an exit code."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from provisioner.errors import (
    EXIT_INTERRUPTED,
    EnvctlError,
)

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


def stderr_console() -> Any:
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
                console = stderr_console()
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
