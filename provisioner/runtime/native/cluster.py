"""Creating a native cluster: initdb with the profile's user, password and locale, its
database, the server's files, and a cached cluster's new password."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from provisioner import signals
from provisioner.connection import UNLOGGED_SESSION
from provisioner.errors import InfrastructureError
from provisioner.processes import run
from provisioner.runtime import ServerFile, ServerSpec
from provisioner.runtime.binaries import BIN_VARIABLE, Install
from provisioner.runtime.native.layout import Layout
from provisioner.runtime.native.server import BIND_TIMEOUT
from provisioner.runtime.native.user import ServerUser, as_server, child_environment, own

log = logging.getLogger(__name__)

TOOL_TIMEOUT = 300.0  # initdb, single-user mode

HBA = (
    "# written by envctl: local socket for envctl's tools, passwords over TCP\n"
    "local all all trust\n"
    "local replication all trust\n"
    "host all all all scram-sha-256\n"
    "host replication all all scram-sha-256\n"
)

BUILTIN_DATABASES = ("postgres", "template0", "template1")


def check_ssl(spec: ServerSpec, install: Install) -> None:
    if spec.settings.get("ssl") == "on" and not install.has_ssl:
        raise InfrastructureError(
            f"PostgreSQL {install.describe()} was built without SSL, "
            "but the profile's postgres.ssl needs it",
            hint=f"use a PostgreSQL {spec.major} built with OpenSSL (e.g. the distribution's "
            f"package, via postgres.bin_dir or {BIN_VARIABLE}), set postgres.ssl to disable, "
            "or use `runtime: docker`",
        )


def write_files(folder: Path, files: tuple[ServerFile, ...], user: ServerUser | None) -> None:
    folder.mkdir(mode=0o700)
    own(folder, user)
    for item in files:
        if Path(item.name).name != item.name:
            raise InfrastructureError(f"server file name {item.name!r} is not a plain name")
        path = folder / item.name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, item.mode)
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), item.mode)
            handle.write(item.content)
        # Owned by the server's user, so that Postgres accepts its private key (0600).
        own(path, user)


def initdb(spec: ServerSpec, install: Install, layout: Layout, user: ServerUser | None) -> None:
    """Create the cluster with the profile's user, password and locale, then its database."""
    fast = spec.disposable  # a durable profile keeps initdb's fsync too
    password = layout.password_file
    descriptor = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(spec.password + "\n")
    own(password, user)
    argv = [
        str(install.bin_dir / "initdb"),
        "-D",
        str(layout.data),
        f"--username={spec.user}",
        f"--pwfile={password}",
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        f"--locale={choose_locale(spec.locale, spec.encoding)}",
        f"--encoding={spec.encoding}",
        # As on Docker: a cache entry is copied whole on every warm start, and a 16 MB WAL
        # segment was a third of it.
        *(["--no-sync", "--wal-segsize=1"] if fast else []),
        *spec.initdb_args,
    ]
    try:
        _run_tool(argv, layout, user, "initdb")
    finally:
        password.unlink(missing_ok=True)
    hba = layout.data / "pg_hba.conf"
    hba.write_text(HBA)
    own(hba, user)
    if spec.database not in BUILTIN_DATABASES:
        _create_database(spec, install, layout, user, fast)


def _create_database(
    spec: ServerSpec, install: Install, layout: Layout, user: ServerUser | None, fast: bool
) -> None:
    # Single-user mode needs no port, socket or password: the database exists before the
    # server first listens, as with the Docker image's POSTGRES_DB.
    name = spec.database.replace('"', '""')
    argv = [str(install.bin_dir / "postgres"), "--single", "-D", str(layout.data)]
    argv += ["-c", "exit_on_error=on", *(["-F"] if fast else []), "template1"]
    _run_tool(argv, layout, user, "creating the database", f'CREATE DATABASE "{name}"\n')


def _run_tool(
    argv: list[str], layout: Layout, user: ServerUser | None, what: str, stdin: str = ""
) -> None:
    signals.current().checkpoint()
    try:
        result = run(
            argv,
            stdin=stdin,
            merge_stderr=True,
            cwd=layout.folder,
            env=child_environment(layout.folder, user),
            timeout=TOOL_TIMEOUT,
            **as_server(user),
        )
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"{what} took longer than {TOOL_TIMEOUT:g}s") from None
    # The terminal's Ctrl-C reaches the tool too: report the interruption, not its failure.
    signals.current().checkpoint()
    if result.returncode != 0:
        raise InfrastructureError(
            f"{what} failed with {exit_status(result.returncode)}:\n{_indent(result.stdout)}",
            hint="its output above names the cause",
        )


def choose_locale(wanted: str, encoding: str) -> str:
    """`wanted` when this machine has it, else C.UTF-8 (or C) with a warning."""
    installed = _installed_locales()
    if installed is None or _normal(wanted) in installed or wanted in ("C", "POSIX"):
        return wanted
    utf8 = _normal(f"x.{encoding}") == "x.utf8"
    fallback = "C.UTF-8" if utf8 and "c.utf8" in installed else "C"
    log.warning(
        "the locale %s is not installed on this machine; the native server uses %s instead "
        "(sorting may differ from Docker's; install the locale, e.g. with locale-gen, to match)",
        wanted,
        fallback,
    )
    return fallback


def _installed_locales() -> set[str] | None:
    try:
        result = run(["locale", "-a"], timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return {_normal(line) for line in result.stdout.split()}


def _normal(name: str) -> str:
    # en_US.UTF-8, en_US.utf8 and en_us.UTF8 are one locale.
    language, dot, codeset = name.partition(".")
    codeset, at, modifier = codeset.partition("@")
    codeset = codeset.lower().replace("-", "").replace("_", "")
    return f"{language.lower()}{dot}{codeset}{at}{modifier.lower()}"


def adopt_password(spec: ServerSpec, layout: Layout, port: int) -> None:
    """Give a cluster from the cache this environment's password, over the local socket
    (trusted there; over TCP nobody knows the password it was built with)."""
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + BIND_TIMEOUT
    statement = sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
        sql.Identifier(spec.user), sql.Literal(spec.password)
    )
    while True:
        signals.current().checkpoint()
        try:
            with psycopg.connect(
                host=str(layout.socket_dir),
                port=port,
                user=spec.user,
                dbname="postgres",
                autocommit=True,
                connect_timeout=2,
                options=UNLOGGED_SESSION,
            ) as conn:
                conn.execute(statement)
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"could not set the password of a cached cluster ({exc})",
                    hint="ENVCTL_CACHE=off starts without the cache; `envctl cache prune` "
                    "empties it",
                ) from None
            time.sleep(0.02)


def exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _indent(text: str, lines: int = 30) -> str:
    tail = text.rstrip().splitlines()[-lines:] or ["(no output)"]
    return "\n".join("  | " + line for line in tail)
