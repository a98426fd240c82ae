"""Readiness: a real connection with the profile's credentials runs `SELECT 1`."""

from __future__ import annotations

import time
from collections.abc import Callable

from provisioner import signals
from provisioner.connection import Connection
from provisioner.errors import InfrastructureError, ReadinessTimeoutError

POLL_INTERVAL = 0.005  # the shortest pause between two attempts
POLL_BACKOFF = 0.05  # ... and the longest, as a share of the time waited so far
MAX_POLL_INTERVAL = 0.25
FAILURE_CHECK_INTERVAL = 0.25


def import_client() -> None:
    """Import psycopg (60-100 ms): what a runtime does while the server starts elsewhere."""
    import psycopg  # noqa: F401


def wait_until_ready(
    connection: Connection,
    *,
    timeout: float,
    server_failure: Callable[[], str | None],
    log_tail: Callable[[], str],
) -> float:
    """Poll until a connection succeeds; return the seconds it took.

    `server_failure()` returns a reason when the server is gone (so we stop at once instead of
    waiting out the timeout); `log_tail()` supplies the server log for the error message.
    """
    import psycopg

    started = time.monotonic()
    deadline = started + timeout
    checked = started
    last_error = "no attempt yet"
    while True:
        signals.current().checkpoint()
        try:
            kwargs = connection.psycopg_kwargs(connect_timeout=2)
            with psycopg.connect(**kwargs, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return time.monotonic() - started
        except psycopg.Error as exc:
            last_error = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        now = time.monotonic()
        # Ask the runtime whether the server is still there less often than we knock.
        if now - checked >= FAILURE_CHECK_INTERVAL:
            checked = now
            failure = server_failure()
            if failure:
                raise InfrastructureError(
                    f"the database server stopped while starting ({failure})\n"
                    f"{indent_log(log_tail())}",
                    hint="the server log above names the cause",
                )
        if now >= deadline:
            raise ReadinessTimeoutError(
                f"the database did not accept connections within {timeout:g}s "
                f"(last error: {last_error})\n{indent_log(log_tail())}",
                hint="raise postgres.startup_timeout, or read the server log above",
            )
        time.sleep(poll_interval(now - started))


def poll_interval(waited: float) -> float:
    """The pause before the next attempt after `waited` seconds: at most 5 % of the wait.

    A refused or rejected attempt costs a millisecond or two on both sides (the boot script has
    pg_hba turn clients away until the password is set), so a start that is nearly done is
    polled every few milliseconds and loses none of them. A slow start (initdb, a busy
    machine) is polled less and less often: twenty `envctl up` at once on two cores, each
    knocking every 5 ms, spent the CPU their servers needed to start and timed out.
    """
    return min(MAX_POLL_INTERVAL, max(POLL_INTERVAL, waited * POLL_BACKOFF))


def indent_log(text: str) -> str:
    """A server log, indented and marked so that it stands apart from envctl's own lines."""
    lines = text.rstrip().splitlines() or ["(the server log is empty)"]
    return "\n".join("  | " + line for line in lines)
