"""The core lifecycle against real containers: up, env file, status, env, down, run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dotenv import dotenv_values

from provisioner.environments import down, environment, up
from provisioner.errors import AlreadyRunningError, InfrastructureError, PortInUseError
from provisioner.profile import load_profile
from tests.conftest import (
    MAJORS,
    NATIVE_MAJORS,
    ROOT,
    TEST_IMAGE_TEMPLATE,
    RuntimeUnderTest,
    envctl,
    leftovers,
    write_profile,
)

pytestmark = pytest.mark.docker

ORIGINAL_ENV = b"# my local settings\nAPI_KEY=keep-me\nDB_PORT=5432\n"


def profile_text(major: int = 15, **postgres: Any) -> str:
    lines = ["name: life", "postgres:", f"  version: '{major}'"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in postgres.items()]
    lines += ["env:", "  file: .env.test", "  preset: [url, libpq, medusa]"]
    return "\n".join(lines) + "\n"


def connect_from_env_file(path: Path) -> psycopg.Connection[Any]:
    values = {k: v or "" for k, v in dotenv_values(path).items()}
    return psycopg.connect(values["DATABASE_URL"])


BOTH_RUNTIMES = [("docker", m) for m in MAJORS] + [("native", m) for m in NATIVE_MAJORS]


@pytest.mark.parametrize(("runtime", "major"), BOTH_RUNTIMES, indirect=["runtime"])
def test_up_writes_a_matching_env_file_and_down_restores_it(
    tmp_path: Path, docker: Any, runtime: RuntimeUnderTest, major: int
) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(ORIGINAL_ENV)
    env_file.chmod(0o644)
    profile = write_profile(tmp_path, profile_text(major, settings={"work_mem": "8MB"}))

    started = envctl("up", str(profile))
    assert started.returncode == 0, started.stderr
    assert "ready on 127.0.0.1:" in started.stderr
    values = {k: v or "" for k, v in dotenv_values(env_file).items()}
    assert values["API_KEY"] == "keep-me"
    assert env_file.stat().st_mode & 0o777 == 0o640  # 0644 less others: it holds the password
    assert values["PGPASSWORD"] not in started.stderr  # masked in normal output
    assert values["DB_PORT"] == values["PGPORT"] != "5432"

    with connect_from_env_file(env_file) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version and int(version[0]) // 10000 == major
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        assert conn.execute("SHOW work_mem").fetchone() == ("8MB",)
        assert conn.execute("SELECT current_database()").fetchone() == ("test",)
    medusa_url = (
        f"postgresql://{values['DB_USERNAME']}:{values['DB_PASSWORD']}"
        f"@{values['DB_HOST']}:{values['DB_PORT']}/test"
    )
    with psycopg.connect(medusa_url) as conn:
        conn.execute("SELECT 1")
    libpq_env = {k: v for k, v in values.items() if k.startswith("PG")}
    with _connect_with_env(libpq_env) as conn:
        conn.execute("SELECT 1")

    status = envctl("status", "--json")
    rows = [row for row in json.loads(status.stdout) if row["id"] == load_profile(profile).env_id]
    assert [(row["port"], row["runtime"]) for row in rows] == [
        (int(values["PGPORT"]), runtime.name)
    ]
    masked = json.loads(envctl("env", str(profile), "--format", "json").stdout)
    assert masked["PGPASSWORD"] == "****"
    shown = json.loads(envctl("env", str(profile), "-f", "json", "--show-password").stdout)
    assert shown["DATABASE_URL"] == values["DATABASE_URL"]

    removed = envctl("down", str(profile))
    assert removed.returncode == 0, removed.stderr
    assert env_file.read_bytes() == ORIGINAL_ENV
    assert leftovers(docker, tmp_path) == []
    assert envctl("env", str(profile)).returncode == 3


def _connect_with_env(variables: dict[str, str]) -> psycopg.Connection[Any]:
    saved = dict(os.environ)
    os.environ.update(variables)
    try:
        return psycopg.connect("")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_second_up_of_the_same_profile_is_refused_and_other_profiles_run_beside(
    tmp_path: Path, docker: Any, runtime: RuntimeUnderTest
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = load_profile(write_profile(tmp_path / "a", profile_text()))
    second = load_profile(write_profile(tmp_path / "b", profile_text()))
    env_a = up(first)
    try:
        with pytest.raises(AlreadyRunningError, match="already up"):
            up(first)
        cli = envctl("up", str(first.path))
        assert cli.returncode == 3 and "already up" in cli.stderr
        env_b = up(second)
        try:
            assert env_a.port != env_b.port
            for env in (env_a, env_b):
                with psycopg.connect(env.url) as conn:
                    conn.execute("SELECT 1")
        finally:
            down(env_b.env_id)
    finally:
        down(env_a.env_id)


def test_fixed_port_is_used_and_a_taken_port_names_the_container(
    tmp_path: Path, docker: Any, runtime: RuntimeUnderTest
) -> None:
    port = _free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    holder = load_profile(write_profile(tmp_path / "a", profile_text(port=port)))
    env = up(holder)
    try:
        assert env.port == port
        other = load_profile(write_profile(tmp_path / "b", profile_text(port=port)))
        with pytest.raises(PortInUseError) as info:
            up(other)
        assert str(port) in info.value.message
        assert f"envctl-{holder.env_id}" in info.value.message
        assert not (tmp_path / "b" / ".env.test").exists()
    finally:
        down(env.env_id)


def test_a_port_held_by_another_process_is_reported(tmp_path: Path, docker: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        profile = write_profile(tmp_path, profile_text(port=port))
        result = envctl("up", str(profile))
    assert result.returncode == 3
    assert f"port {port} on 127.0.0.1 is already in use by another process" in result.stderr
    assert "Traceback" not in result.stderr


def test_each_environment_gets_its_own_random_password(
    tmp_path: Path, docker: Any, runtime: RuntimeUnderTest
) -> None:
    profile = load_profile(write_profile(tmp_path, profile_text()))
    with environment(profile) as first:
        password = first.password
    with environment(profile) as second:
        assert second.password != password
        assert len(second.password) >= 20


def test_run_passes_the_suites_exit_code_and_variables_then_tears_down(
    tmp_path: Path, docker: Any, runtime: RuntimeUnderTest
) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(ORIGINAL_ENV)
    suite = tmp_path / "suite.py"
    suite.write_text(
        "import os, sys, psycopg\n"
        "from dotenv import dotenv_values\n"
        "from_file = dotenv_values('.env.test')\n"
        "assert from_file['DATABASE_URL'] == os.environ['DATABASE_URL']\n"
        "assert os.environ['EXTRA'] == 'from-profile'\n"
        "with psycopg.connect(os.environ['DATABASE_URL']) as conn:\n"
        "    conn.execute('CREATE TABLE t (id int)')\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    text = profile_text() + "test:\n  env:\n    EXTRA: from-profile\n"
    profile = write_profile(tmp_path, text)
    failed = envctl("run", str(profile), "--", sys.executable, str(suite), "3", cwd=tmp_path)
    assert failed.returncode == 3, failed.stderr
    assert "failed (exit code 3)" in failed.stderr
    assert env_file.read_bytes() == ORIGINAL_ENV
    assert leftovers(docker, tmp_path) == []
    passed = envctl("run", str(profile), "--", sys.executable, str(suite), "0", cwd=tmp_path)
    assert passed.returncode == 0, passed.stderr
    assert env_file.read_bytes() == ORIGINAL_ENV


def test_run_without_a_command_is_a_user_error_that_starts_nothing(
    tmp_path: Path, docker: Any
) -> None:
    result = envctl("run", str(write_profile(tmp_path, profile_text())))
    assert result.returncode == 2
    assert "no test command" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_suite_tears_everything_down(
    tmp_path: Path, docker: Any, signum: int, runtime: RuntimeUnderTest
) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(ORIGINAL_ENV)
    marker = tmp_path / "suite-started"
    suite = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(600)"
    profile = write_profile(tmp_path, profile_text())
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provisioner",
            "run",
            str(profile),
            "--",
            sys.executable,
            "-c",
            suite,
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(marker.exists, 120)
        assert env_file.read_bytes() != ORIGINAL_ENV
        process.send_signal(signum)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum, process.stderr.read() if process.stderr else ""
    assert env_file.read_bytes() == ORIGINAL_ENV
    assert leftovers(docker, tmp_path) == []


def test_a_server_that_cannot_start_shows_its_log_and_leaves_nothing(
    tmp_path: Path, docker: Any, runtime: RuntimeUnderTest
) -> None:
    profile = write_profile(tmp_path, profile_text(settings={"shared_buffers": "lots"}))
    result = envctl("up", str(profile))
    assert result.returncode == 3
    assert "stopped while starting" in result.stderr
    assert "shared_buffers" in result.stderr  # the server's own complaint, from its log
    assert not (tmp_path / ".env.test").exists()
    assert leftovers(docker, tmp_path) == []


def test_readiness_timeout_is_a_clear_error_with_the_log_tail(tmp_path: Path, docker: Any) -> None:
    profile = load_profile(write_profile(tmp_path, profile_text(startup_timeout=0.01)))
    with pytest.raises(InfrastructureError, match=r"did not accept connections within 0\.01s"):
        up(profile)
    assert leftovers(docker, tmp_path) == []


def test_an_image_that_cannot_be_had_is_a_clear_error(tmp_path: Path, docker: Any) -> None:
    text = profile_text(image="envctl-test/postgres:does-not-exist")
    result = envctl("up", str(write_profile(tmp_path, text)))
    assert result.returncode == 2
    assert "envctl-test/postgres:does-not-exist" in result.stderr
    assert "ENVCTL_POSTGRES_IMAGE" in result.stderr
    assert leftovers(docker, tmp_path) == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_an_image_with_init_scripts_of_its_own_starts_through_its_entrypoint(
    tmp_path: Path, docker: Any
) -> None:
    # envctl's own start-up skips the entrypoint's temporary server; an image (PostGIS, say)
    # that brings /docker-entrypoint-initdb.d scripts needs it, so it goes the image's way.
    import io
    import tarfile

    script = b"CREATE TABLE made_by_the_image (id int);\n"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("docker-entrypoint-initdb.d/10-table.sql")
        info.size, info.mode = len(script), 0o644
        tar.addfile(info, io.BytesIO(script))
    # A commit, not a build: a RUN step's container would leave the image's VOLUME behind.
    holder = docker.containers.create(TEST_IMAGE_TEMPLATE.format(major=15))
    tag = "envctl-test/postgres-initscripts:15"
    try:
        holder.put_archive("/", archive.getvalue())
        holder.commit(repository=tag.split(":")[0], tag="15")
    finally:
        holder.remove(v=True)
    try:
        env = up(load_profile(write_profile(tmp_path, profile_text(image=tag))))
        try:
            with psycopg.connect(env.url) as conn:
                row = conn.execute("SELECT to_regclass('made_by_the_image') IS NOT NULL").fetchone()
            assert row == (True,)
            assert env.connection.database == "test"
        finally:
            down(env.env_id)
    finally:
        docker.images.remove(tag, force=True)
    assert leftovers(docker, tmp_path) == []


def test_a_server_started_by_envctl_runs_as_postgres_and_keeps_no_network(
    tmp_path: Path, docker: Any
) -> None:
    env = up(load_profile(write_profile(tmp_path, profile_text())))
    try:
        container = docker.containers.get(f"envctl-{env.env_id}")
        processes = container.top(ps_args="-o pid,uid,comm")["Processes"]
        assert {uid for _, uid, _ in processes} == {"999"}  # the image's postgres user, never root
        # No network of envctl's: with no seed, this machine's network (test_placement.py);
        # an envctl network is made only when a suite container joins.
        assert [kind for kind, _ in leftovers(docker, tmp_path)] == ["container"]
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        with psycopg.connect(env.url) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    finally:
        down(env.env_id)
