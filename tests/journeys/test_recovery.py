"""Journeys of recovering from a killed envctl: `kill -9` of `envctl run P -- sleep 60` while the
suite runs leaves the environment behind; `status` shows it orphaned, `gc` removes the container
and the suite's sleep and restores the env file, and the next `run` gets the same fixed port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.journeys.conftest import ENVCTL, Journey, no_traceback

pytestmark = pytest.mark.journey

PORT = 55442
PROFILE = f"""\
name: crashy
postgres:
  version: "15"
  port: {PORT}
env:
  file: .env.test
"""
ORIGINAL = b"# the user's file\nAPI_KEY=abc\nDATABASE_URL=postgresql://me@localhost/dev\n"


def _wait_for(condition: object, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(0.1)


def _gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaps (the suite is reparented once envctl dies)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(child) for child in found.stdout.split()]


def _kill_9_a_run(journey: Journey) -> list[int]:
    """Start `envctl run envctl.yaml -- sleep 60`, kill -9 it once the suite runs; the suite's
    pids, still running."""
    (journey.workdir / "envctl.yaml").write_text(PROFILE)
    log = journey.workdir / "run.log"
    with log.open("w") as out:
        killed = subprocess.Popen(
            [str(ENVCTL), "run", "envctl.yaml", "--", "sleep", "60"],
            cwd=journey.workdir,
            env=journey.env,
            stdout=out,
            stderr=out,
        )
    try:
        _wait_for(lambda: "running: sleep 60" in log.read_text(), "the suite to start")
        suite = [pid for pid in _children(killed.pid) if not _gone(pid)]
        assert len(suite) == 1, (suite, log.read_text())
        os.kill(killed.pid, signal.SIGKILL)
        assert killed.wait(timeout=30) == -signal.SIGKILL
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    assert not _gone(suite[0])  # kill -9 gives envctl no chance to stop its suite
    return suite


def test_gc_after_kill_9_of_a_run_then_run_again_on_the_same_port(journey: Journey) -> None:
    env_file = journey.workdir / ".env.test"
    env_file.write_bytes(ORIGINAL)
    suite = _kill_9_a_run(journey)
    assert env_file.read_bytes() != ORIGINAL

    status = journey.envctl("status")
    assert status.returncode == 0, status.stderr
    assert "crashy-" in status.stderr and "(orphan)" in status.stderr
    dry = journey.envctl("gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "1 orphaned environment(s)" in dry.stderr

    collected = journey.envctl("gc")
    assert collected.returncode == 0, collected.stderr
    no_traceback(collected)
    assert "removed container envctl-crashy-" in collected.stderr
    assert f"restored {env_file}" in collected.stderr
    _wait_for(lambda: _gone(suite[0]), "gc to stop the suite's sleep", seconds=15)
    assert env_file.read_bytes() == ORIGINAL
    assert journey.envctl("status").stderr.startswith("no environments\n")
    assert "nothing to collect" in journey.envctl("gc").stderr

    check = journey.workdir / "check.py"
    check.write_text(
        "import os, psycopg\n"
        "with psycopg.connect(os.environ['DATABASE_URL']) as conn:\n"
        "    print(conn.info.port, conn.execute('SELECT 1').fetchone()[0])\n"
    )
    again = journey.envctl("run", "envctl.yaml", "--", "python", "check.py")
    assert again.returncode == 0, again.stderr
    assert f"ready on 127.0.0.1:{PORT}" in again.stderr
    assert again.stdout.strip().splitlines()[-1] == f"{PORT} 1"
    assert journey.envctl("run", "envctl.yaml", "--", "true").returncode == 0
    assert env_file.read_bytes() == ORIGINAL


def test_the_next_run_of_a_killed_run_removes_its_orphan_first(journey: Journey) -> None:
    suite = _kill_9_a_run(journey)
    # The README: "the next `up` of the same profile removes it first".
    url_check = journey.workdir / "url.py"
    url_check.write_text("import os\nprint(os.environ['DATABASE_URL'])\n")
    again = journey.envctl("run", "envctl.yaml", "--", "python", "url.py")
    assert again.returncode == 0, again.stderr
    assert f"ready on 127.0.0.1:{PORT}" in again.stderr
    for pid in suite:
        _wait_for(lambda pid=pid: _gone(pid), "the orphan's sleep to be stopped", seconds=15)
    assert not (journey.workdir / ".env.test").exists()
