"""Progress of a long step (an image pull, a big restore): a live spinner on a terminal, plain
lines anywhere else.

A CI log or a file must get lines that read well when replayed, so the spinner is only shown
when stderr is a terminal, CI is unset and neither NO_COLOR nor TERM=dumb asks for plain text.
Its own module rather than console.py: that is the console script's start-up, which must not
grow imports; rich is imported here only when a spinner is really shown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

Notify = Callable[[str], None]
_FALSY = ("", "0", "false", "no", "off")
_log = logging.getLogger("provisioner")


def quiet(message: str) -> None:
    """The Notify of library callers that pass none: the message goes to the log."""
    _log.info(message)


def interactive(stream: TextIO | None = None, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether progress may be drawn live: a terminal, not CI, no NO_COLOR, not TERM=dumb."""
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
    return (
        tty
        and environ.get("CI", "").strip().lower() in _FALSY
        and "NO_COLOR" not in environ
        and environ.get("TERM", "") != "dumb"
    )


class Progress:
    """What a long step says as it goes: `show(text)` replaces the spinner's text on a
    terminal, or is one plain line elsewhere. `live` says which, so that a caller can report
    more often when nothing piles up in a log."""

    def __init__(self, notify: Notify, status: Any = None) -> None:
        self._notify = notify
        self._status = status
        self.live = status is not None

    def show(self, text: str) -> None:
        """The step's latest state."""
        if self._status is not None:
            self._status.update(text)
        else:
            self._notify(text)


@contextlib.contextmanager
def progress(
    first: str, notify: Notify | None = None, plain_first: bool = True
) -> Iterator[Progress]:
    """A step that may take long: a spinner with `first` on a terminal (gone when it ends),
    else plain lines through `notify` (default stderr), `first` among them if `plain_first`."""
    notify = notify or _to_stderr
    if not interactive():
        if plain_first:
            notify(first)
        yield Progress(notify)
        return
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    with console.status(first) as status:
        yield Progress(notify, status)


def _to_stderr(text: str) -> None:
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr, flush=True)
