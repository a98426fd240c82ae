"""SIGINT, SIGTERM and SIGHUP become a flag that envctl checks at safe points.

A signal never interrupts a Docker call half way: it is recorded, and the loops that wait
(readiness, the suite) raise `Interrupted` at their next check, so teardown always runs whole.
A third signal gives up waiting and exits at once (`envctl gc` tidies up after that).
SIGHUP (a closed terminal, a dropped SSH connection) is a request to stop like SIGTERM, unless
envctl was started with it ignored (`nohup`): then it stays ignored.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from provisioner.errors import Interrupted

# Windows has no SIGHUP: what a platform lacks is not handled there.
_HANDLED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class SignalState:
    """The signals received while a guard was installed."""

    def __init__(self) -> None:
        self.received: list[int] = []

    @property
    def pending(self) -> int | None:
        return self.received[0] if self.received else None

    def checkpoint(self) -> None:
        """Raise Interrupted if a signal arrived."""
        if self.received:
            raise Interrupted(self.received[0])

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if len(self.received) >= 3:
            raise KeyboardInterrupt("forced exit after repeated signals")


_current = SignalState()


def current() -> SignalState:
    """The state the innermost guard records into (a dummy outside any guard)."""
    return _current


@contextmanager
def deferred_signals() -> Iterator[SignalState]:
    """Record SIGINT/SIGTERM/SIGHUP instead of dying; restore the previous handlers afterwards."""
    global _current
    state = SignalState()
    if threading.current_thread() is not threading.main_thread():
        # Handlers can only be installed from the main thread; a library caller in another
        # thread keeps Python's defaults.
        yield state
        return
    previous = {signum: signal.getsignal(signum) for signum in _HANDLED}
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is not None and previous[hangup] == signal.SIG_IGN:
        del previous[hangup]  # nohup: the user asked to survive a hang-up
    outer, _current = _current, state
    for signum in previous:
        signal.signal(signum, state._handle)
    try:
        yield state
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _current = outer
