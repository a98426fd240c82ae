"""The `envctl` console script: the CLI, started without the cyclic garbage collector.

A command's first moments are imports (typer, pydantic, psycopg): tens of thousands of objects
that live until the process exits, which the collector would scan again and again while they
are made, for nothing: 10-30 ms of every start on a 2-core machine. The collector is off while
a command starts, and back on after `START_UP_SECONDS` for the commands that keep running (a
suite, a long restore). Only the console script does this; importing envctl as a library
changes nothing.
"""

from __future__ import annotations

import gc
import threading

START_UP_SECONDS = 2.0


def main() -> None:
    gc.disable()
    timer = threading.Timer(START_UP_SECONDS, _collect_again)
    timer.daemon = True
    timer.start()
    from provisioner.cli import main as cli_main

    cli_main()


def _collect_again() -> None:
    gc.freeze()  # what start-up made lives until the end: the collector skips it for good
    gc.enable()
