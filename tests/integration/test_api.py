"""The Python API and the pytest plugin against real containers.

The plugin is tested the way a user meets it: tests/sample_project is copied into the test's
folder and run by pytest in a subprocess, serially, with pytest-xdist, and interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import provisioner
from provisioner.environments import down, find, up
from provisioner.errors import ProfileError, UsageError
from provisioner.profile import load_profile
from tests.conftest import ROOT, envctl, leftovers, write_profile

SAMPLE = ROOT / "tests" / "sample_project"
SEEDED = """\
name: api
postgres:
  version: '15'
  database: shop
  seed:
    - sql: |
        CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
        INSERT INTO items (name) VALUES ('apple'), ('pear'), ('plum');
env:
  file: .env.test
  preset: [url, libpq]
"""


def count_items(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM items").fetchone()
    assert row is not None
    return int(row[0])


def test_environment_yields_a_working_database_and_removes_it(
    tmp_path: Path, docker: Any, private_state: Path
) -> None:
    profile = write_profile(tmp_path, SEEDED)
    env_file = tmp_path / ".env.test"
    with provisioner.environment(profile, postgres__version="17") as env:
        assert (env.host, env.user, env.database) == ("127.0.0.1", "postgres", "shop")
        assert env.env["DATABASE_URL"] == env.url
        assert env.env["PGPORT"] == str(env.port)
        assert env.env["PGPASSWORD"] == env.password
        assert f"DATABASE_URL={env.url}" in env_file.read_text()
        with psycopg.connect(env.url) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()
            assert version is not None and int(version[0]) // 10000 == 17
        assert count_items(env.url) == 3
        assert leftovers(docker, private_state)
    assert not leftovers(docker, private_state)
    assert not env_file.exists()


def test_environment_is_removed_when_the_block_raises(
    tmp_path: Path, docker: Any, private_state: Path
) -> None:
    profile = write_profile(tmp_path, SEEDED)
    with pytest.raises(RuntimeError, match="boom"), provisioner.environment(profile) as env:
        assert count_items(env.url) == 3
        raise RuntimeError("boom")
    assert not leftovers(docker, private_state)
    assert not (tmp_path / ".env.test").exists()


def test_clone_reset_and_drop(tmp_path: Path, docker: Any) -> None:
    profile = write_profile(tmp_path, SEEDED)
    with provisioner.environment(profile, env__file=None) as env:
        with psycopg.connect(env.url, autocommit=True) as conn:
            conn.execute("DELETE FROM items")
        assert count_items(env.url) == 0

        url = env.clone("case_1")
        assert count_items(url) == 3  # from the seeded template, not the changed database
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO items (name) VALUES ('fig')")
        assert count_items(url) == 4
        assert env.env_for("case_1")["PGDATABASE"] == "case_1"
        assert env.clone_database("case_2").env["DATABASE_URL"].split("?")[0].endswith("/case_2")

        with pytest.raises(UsageError, match="case_1"):
            env.clone("case_1")
        with pytest.raises(UsageError, match="envctl manages"):
            env.drop(env.database)
        with pytest.raises(UsageError, match="not a database name"):
            env.clone("x" * 64)

        assert env.reset() >= 0
        assert count_items(env.url) == 3
        env.drop("case_1")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url).close()
        assert count_items(env.clone("case_1")) == 3  # the name is free again


def test_an_invalid_override_starts_nothing(
    tmp_path: Path, docker: Any, private_state: Path
) -> None:
    profile = write_profile(tmp_path, SEEDED)
    starting = provisioner.environment(profile, postgres__port=70000)
    with pytest.raises(ProfileError, match=r"override postgres__port"), starting:
        pytest.fail("nothing may start")
    assert not leftovers(docker, private_state)


# The pytest plugin, through tests/sample_project


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A copy of the sample project, so that its profile (and env_id) belong to this test."""
    folder = tmp_path / "sample_project"
    shutil.copytree(SAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", ".env.test"))
    return folder


def run_sample(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(
        command,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, **(env or {})},
    )


def containers_created(docker: Any, since: float, state: Path) -> list[str]:
    """Names of the envctl containers of `state` created since `since` (Docker's events)."""
    events = docker.events(
        since=int(since),
        until=int(time.time()) + 1,
        filters={"type": "container", "event": "create", "label": "dev.envctl.managed"},
        decode=True,
    )
    return [
        event["Actor"]["Attributes"]["name"]
        for event in events
        if event["Actor"]["Attributes"].get("dev.envctl.state-dir", "").startswith(str(state))
    ]


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_the_sample_project_gets_a_fresh_seeded_database_per_test(
    sample: Path, docker: Any, private_state: Path, workers: str | None
) -> None:
    started = time.time()
    args = ["--envctl-profile", "envctl.yaml", "-q"]
    if workers:
        args += ["-n", workers]
    result = run_sample(sample, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "52 passed, 1 skipped" in result.stdout
    assert len(containers_created(docker, started, private_state)) == 1  # shared by all workers
    assert not leftovers(docker, private_state)
    assert not (sample / ".env.test").exists()


def test_the_ini_option_configures_the_plugin(sample: Path, docker: Any) -> None:
    result = run_sample(sample, "-q", "-k", "own_variables or session_variables")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_an_environment_that_is_already_up_is_reused_and_kept(
    sample: Path, docker: Any, private_state: Path
) -> None:
    profile = load_profile(sample / "envctl.yaml")
    env = up(profile)
    try:
        result = run_sample(sample, "-q", "-n", "2")
        assert result.returncode == 0, result.stdout + result.stderr
        with psycopg.connect(env.connection.with_database("postgres").url) as conn:
            names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
        assert not [name for name in names if name.startswith("t_")]  # every clone dropped
        assert count_items(env.url) == 3
    finally:
        down(env.env_id)
    assert not leftovers(docker, private_state)


def start_blocking_run(sample: Path, flag: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    """Start the sample suite with a test that blocks; return it and the pid running that test.

    The blocking test writes `flag` once the environment is up and its clone exists.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=sample,
        env={**os.environ, "SAMPLE_BLOCK_UNTIL": str(flag)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches it
    )
    deadline = time.monotonic() + 240
    while not (flag.exists() and flag.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the blocking test never ran: {process.communicate()[0]}")
        time.sleep(0.1)
    return process, int(flag.read_text().split()[0])


@pytest.mark.parametrize(
    ("workers", "sig"),
    [(None, signal.SIGINT), ("2", signal.SIGINT), ("2", signal.SIGTERM)],
    ids=["serial-sigint", "xdist-sigint", "xdist-sigterm"],
)
def test_an_interrupted_session_leaves_nothing_behind(
    sample: Path,
    tmp_path: Path,
    docker: Any,
    private_state: Path,
    workers: str | None,
    sig: signal.Signals,
) -> None:
    args = ["-k", "blocks"] + (["-n", workers] if workers else [])
    process, _ = start_blocking_run(sample, tmp_path / "blocked", *args)
    assert leftovers(docker, private_state)
    os.killpg(process.pid, sig)
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0, output
    assert not leftovers(docker, private_state), output
    assert not (sample / ".env.test").exists()


def test_a_killed_worker_loses_its_clone_with_the_environment(
    sample: Path, tmp_path: Path, docker: Any, private_state: Path
) -> None:
    process, worker = start_blocking_run(sample, tmp_path / "blocked", "-n", "2")
    os.kill(worker, signal.SIGKILL)
    output = process.communicate(timeout=240)[0]
    assert "1 failed, 52 passed" in output
    assert "crashed" in output
    assert not leftovers(docker, private_state)


def test_without_a_profile_the_plugin_does_nothing(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(
        "def test_plain():\n    pass\n\ndef test_db(envctl_db):\n    pass\n"
    )
    result = run_sample(tmp_path, "-q")
    assert "1 failed, 1 passed" in result.stdout or "1 passed, 1 error" in result.stdout
    assert "no profile configured: pass --envctl-profile PATH" in result.stdout


KEEP_FAILED = """\
import psycopg

def test_passes(envctl_db):
    with psycopg.connect(envctl_db.url) as conn:
        conn.execute("INSERT INTO items (name) VALUES ('passing')")

def test_breaks[WHERE](envctl_db):
    with psycopg.connect(envctl_db.url) as conn:
        conn.execute("INSERT INTO items (name) VALUES ('evidence')")
    assert False, "the bug"
"""


@pytest.mark.parametrize("workers", [None, "2"], ids=["serial", "xdist"])
def test_keep_failed_keeps_the_failed_tests_database_and_the_environment(
    sample: Path, docker: Any, private_state: Path, workers: str | None
) -> None:
    (sample / "test_items.py").unlink()
    (sample / "test_keep.py").write_text(KEEP_FAILED.replace("[WHERE]", ""))
    args = ["--envctl-profile", "envctl.yaml", "-q", "--envctl-keep-failed"]
    result = run_sample(sample, *args, *(["-n", workers] if workers else []))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "envctl kept the databases of failed tests" in result.stdout, result.stdout
    profile = load_profile(sample / "envctl.yaml")
    env = find(profile)
    assert env is not None  # kept up, for the kept database
    try:
        assert env.password not in result.stdout
        with psycopg.connect(env.connection.with_database("postgres").url) as conn:
            names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
        kept = [name for name in names if name.startswith("failed_")]
        assert len(kept) == 1 and kept[0].endswith("_test_breaks"), names
        assert f"/{kept[0]}?" in result.stdout
        assert not [name for name in names if name.startswith("t_")]  # the passing test's: gone
        with psycopg.connect(env.connection.with_database(kept[0]).url) as conn:
            rows = conn.execute("SELECT name FROM items ORDER BY id").fetchall()
        assert rows[-1] == ("evidence",)  # what the failed test left, to look at
        # `envctl db` sees it as a clone; `down` removes it all.
        listed = envctl("db", "list", str(sample / "envctl.yaml"), "--json")
        assert [clone["name"] for clone in json.loads(listed.stdout)] == kept
    finally:
        down(env.env_id)
    assert not leftovers(docker, private_state)
    # Without the option a failed test's database goes with the environment.
    again = run_sample(sample, "--envctl-profile", "envctl.yaml", "-q")
    assert again.returncode == 1 and "envctl kept" not in again.stdout
    assert find(profile) is None and not leftovers(docker, private_state)
