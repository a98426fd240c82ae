"""The `envctl` console script: the CLI, started without the cyclic garbage collector.

A command's first moments are imports (typer, pydantic, psycopg): tens of thousands of objects
that live until the process exits, which the collector would scan again and again while they
are made, for nothing: 10-30 ms of every start on a 2-core machine. The collector is off while
a command starts, and back on after `START_UP_SECONDS` for the commands that keep running (a
suite, a long restore). Only the console script does this; importing envctl as a library
changes nothing.

Ctrl-C while the CLI is still being imported (its first ~0.2 s) ends the command quietly with
130, as it does later: a traceback through typer's imports says nothing to anyone.

A plain `envctl validate PATH...` (no option, no shell completion asked for) runs without typer:
importing typer and building every command is about a third of what validate takes, and CI
runs it often. It says and exits exactly as the typer command does (see validation.py); any
other command line goes to typer.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from pathlib import Path

START_UP_SECONDS = 2.0
EXIT_INTERRUPTED = 130  # errors.EXIT_INTERRUPTED, without importing more before the handler


def main() -> None:
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    gc.disable()
    timer = threading.Timer(START_UP_SECONDS, _collect_again)
    timer.daemon = True
    timer.start()
    profiles = _profiles_to_validate(sys.argv[1:])
    try:
        if profiles is None:
            from provisioner.cli import main as cli_main
        else:
            from provisioner.validation import validate_without_typer
    except KeyboardInterrupt:  # raised before our handler was installed
        os._exit(EXIT_INTERRUPTED)
    if previous is signal.default_int_handler:
        # From here on a KeyboardInterrupt unwinds (finally blocks run) and the CLI maps it to 130.
        signal.signal(signal.SIGINT, previous)
    if profiles is None:
        cli_main()
    else:
        validate_without_typer(profiles)


def _profiles_to_validate(args: list[str]) -> list[Path] | None:
    """The paths of a plain `validate PATH...`; None for any other command line: an option
    (`--help`, `-v`, `--`), no path at all, or shell completion (`_ENVCTL_COMPLETE`)."""
    if len(args) < 2 or args[0] != "validate" or any(arg.startswith("-") for arg in args):
        return None
    if any(name.endswith("_COMPLETE") and value for name, value in os.environ.items()):
        return None
    return [Path(arg) for arg in args[1:]]


def _interrupted_while_starting(signum: int, frame: object) -> None:
    # Nothing has been started or written yet: nothing to tidy up.
    os._exit(EXIT_INTERRUPTED)


def _collect_again() -> None:
    gc.freeze()  # what start-up made lives until the end: the collector skips it for good
    gc.enable()
