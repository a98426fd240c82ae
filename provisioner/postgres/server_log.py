"""What the server said: the lines of its log that explain a suite's failure.

A failing suite's own expected errors fill the end of the log; the `pg_hba` rejections and
failed logins that explain why its clients could not connect are often further up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# How far back envctl looks for connection failures, and how much of the log it shows.
SCANNED_LINES = 5000
TAIL_LINES = 20
SHOWN_FAILURES = 20
# FATAL: the server ended a session (a login refused, among others); the rest name the cause.
_CONNECTION_FAILURE = re.compile(r"FATAL|pg_hba|authentication|SSL|no encryption")
# envctl's own rule turns TCP clients away until the password is set (docker_boot.sh): those
# are its readiness probes, not the suite's clients. Profiles cannot add `reject` rules.
_UNTIL_READY = "pg_hba.conf rejects connection"


@dataclass(frozen=True)
class LogExcerpt:
    """The connection-failure lines from before the tail, how many there were, and the tail."""

    failures: tuple[str, ...]
    more_failures: int
    tail: tuple[str, ...]


def log_excerpt(
    text: str, *, tail: int = TAIL_LINES, shown_failures: int = SHOWN_FAILURES
) -> LogExcerpt:
    """The last `tail` lines of `text`, and before them the first `shown_failures` lines that
    explain connection failures (those already in the tail are not repeated)."""
    lines = text.rstrip().splitlines()
    before, last = lines[: max(len(lines) - tail, 0)], lines[-tail:] if tail else []
    failures = [
        line for line in before if _CONNECTION_FAILURE.search(line) and _UNTIL_READY not in line
    ]
    return LogExcerpt(
        failures=tuple(failures[:shown_failures]),
        more_failures=max(len(failures) - shown_failures, 0),
        tail=tuple(last),
    )
