"""Readiness: a real connection with the profile's credentials runs `SELECT 1`."""

from __future__ import annotations

import time
from collections.abc import Callable

from provisioner import signals
from provisioner.connection import Connection
from provisioner.errors import InfrastructureError, ReadinessTimeoutError
from provisioner.runtime import Runtime


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
    delay = 0.02
    last_error = "no attempt yet"
    while True:
        signals.current().checkpoint()
        try:
            with psycopg.connect(**connection.psycopg_kwargs(connect_timeout=2)) as conn:
                conn.execute("SELECT 1")
            return time.monotonic() - started
        except psycopg.Error as exc:
            last_error = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        failure = server_failure()
        if failure:
            raise InfrastructureError(
                f"the database server stopped while starting ({failure})\n{indent_log(log_tail())}",
                hint="the server log above names the cause",
            )
        if time.monotonic() >= deadline:
            raise ReadinessTimeoutError(
                f"the database did not accept connections within {timeout:g}s "
                f"(last error: {last_error})\n{indent_log(log_tail())}",
                hint="raise postgres.startup_timeout, or read the server log above",
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def indent_log(text: str) -> str:
    """A server log, indented and marked so that it stands apart from envctl's own lines."""
    lines = text.rstrip().splitlines() or ["(the server log is empty)"]
    return "\n".join("  | " + line for line in lines)


def adopt_password(runtime: Runtime, env_id: str, connection: Connection, timeout: float) -> None:
    """Set the connection's password over the server's local socket, as soon as it answers."""
    import tempfile
    from pathlib import Path

    from psycopg import sql

    statement = sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
        sql.Identifier(connection.user), sql.Literal(connection.password)
    )
    with tempfile.TemporaryDirectory(prefix="envctl-pw-") as folder:
        path = Path(folder) / "password.sql"
        path.write_text(statement.as_string(None) + ";\n")
        path.chmod(0o600)
        inside = runtime.copy_in(env_id, path)
    argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", connection.user]
    argv += ["-d", "postgres", "-f", inside]
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        signals.current().checkpoint()
        result = runtime.exec(env_id, argv)
        if result.exit_code == 0:
            return
        failure = runtime.failure(env_id)
        if failure or time.monotonic() >= deadline:
            raise InfrastructureError(
                "could not set the password of a cached cluster "
                f"({failure or result.output.strip()})\n{indent_log(runtime.log_tail(env_id))}",
                hint="ENVCTL_CACHE=off starts without the cache; `envctl cache prune` empties it",
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
