"""What a command says on stderr, how it logs, and how its process ends: without typer.

The typer app (cli/app.py) and the console script's `validate` without typer (console.py) both
speak and exit through these functions, so that they print the same lines in the same colours
and end with the same codes. Nothing here imports more than the standard library until an error
is printed (rich, for its colour).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

from provisioner.errors import EnvctlError


def configure_logging(verbose: bool) -> None:
    """`--verbose` shows what envctl does; otherwise only warnings, each as `envctl: ...`."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="envctl: %(message)s",
        stream=sys.stderr,
    )


def stderr_console() -> Any:
    """A rich console on stderr (rich takes 30 ms to import: only for errors and tables)."""
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


def print_error(exc: EnvctlError) -> None:
    """envctl's own error as one red line, plus its hint in yellow."""
    try:
        console = stderr_console()
        console.print(f"error: {exc.message}", style="bold red", markup=False)
        if exc.hint:
            console.print(f"hint: {exc.hint}", style="yellow", markup=False)
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


def exit_process(code: object) -> NoReturn:
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
