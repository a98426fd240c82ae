"""The `envctl` console script: the CLI, started without the cyclic garbage collector.

A command's first moments are imports (typer, pydantic, psycopg): tens of thousands of objects
that live until the process exits, which the collector would scan again and again while they
are made, for nothing: 10-30 ms of every start on a 2-core machine. The collector is off while
a command starts, and back on after `START_UP_SECONDS` for the commands that keep running (a
suite, a long restore). Only the console script does this; importing envctl as a library
changes nothing.

Ctrl-C while the CLI is still being imported (its first ~0.2 s) ends the command quietly with
130, as it does later: a traceback through typer's imports says nothing to anyone.
"""

from __future__ import annotations

import gc
import os
import signal
import threading

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
    try:
        from provisioner.cli import main as cli_main
    except KeyboardInterrupt:  # raised before our handler was installed
        os._exit(EXIT_INTERRUPTED)
    if previous is signal.default_int_handler:
        # From here on a KeyboardInterrupt unwinds (finally blocks run) and the CLI maps it to 130.
        signal.signal(signal.SIGINT, previous)
    cli_main()


def _interrupted_while_starting(signum: int, frame: object) -> None:
    # Nothing has been started or written yet: nothing to tidy up.
    os._exit(EXIT_INTERRUPTED)


def _collect_again() -> None:
    gc.freeze()  # what start-up made lives until the end: the collector skips it for good
    gc.enable()
