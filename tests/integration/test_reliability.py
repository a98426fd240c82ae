"""Faults against real envctl processes: signals at every phase, kill -9 and gc, concurrency."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dotenv import dotenv_values

from provisioner.environments import down, up
from provisioner.errors import AlreadyRunningError
from provisioner.profile import load_profile
from tests.conftest import ROOT, envctl, leftovers, write_profile

pytestmark = pytest.mark.docker

ORIGINAL = b"# keep me\nDATABASE_URL=postgresql://mine\nODD=\xe2\x9c\x93 odd bytes\n"
SLOW_SEED = "  seed:\n    - sql: SELECT pg_sleep(2)\n"


def start_envctl(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "provisioner", *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def wait_for_line(process: subprocess.Popen[str], text: str, seconds: float = 120) -> list[str]:
    """Read envctl's stderr until a line contains `text`."""
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"envctl never said {text!r}; it said: {''.join(seen)}")


def finish(process: subprocess.Popen[str], seconds: float = 90) -> str:
    try:
        _, err = process.communicate(timeout=seconds)
    finally:
        if process.poll() is None:
            process.kill()
    return err or ""


def kill_9_during_the_suite(profile: Path, pid_file: Path) -> None:
    """Start `envctl run`, SIGKILL it while the suite runs, then end the orphaned suite."""
    suite = (
        "import os, pathlib, time; "
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(600)"
    )
    process = start_envctl("run", str(profile), "--", sys.executable, "-c", suite)
    wait_for_line(process, "running:")
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    # The suite ran in its own process group and outlives envctl; it holds envctl's stderr.
    os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    finish(process)


# Phases of `envctl run`, each named by the line envctl prints when it begins.
PHASES = {
    "starting": "starting Postgres",
    "seeding": "running inline SQL",
    "suite": "running:",
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", list(PHASES))
def test_a_signal_at_any_phase_removes_everything_and_restores_the_env_file(
    tmp_path: Path, docker: Any, phase: str, signum: int
) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(ORIGINAL)
    profile = write_profile(tmp_path, "name: sig\npostgres:\n  version: '15'\n" + SLOW_SEED)
    process = start_envctl("run", str(profile), "--", "sleep", "600")
    wait_for_line(process, PHASES[phase])
    process.send_signal(signum)
    err = finish(process)
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert env_file.read_bytes() == ORIGINAL
    assert leftovers(docker, tmp_path) == []


def test_a_second_ctrl_c_does_not_leave_things_half_done(tmp_path: Path, docker: Any) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(ORIGINAL)
    profile = write_profile(tmp_path, "name: twice\npostgres:\n  version: '15'\n")
    process = start_envctl("run", str(profile), "--", "sleep", "600")
    wait_for_line(process, "running:")
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    err = finish(process)
    assert process.returncode == 130, err
    assert env_file.read_bytes() == ORIGINAL
    assert leftovers(docker, tmp_path) == []


def test_after_kill_9_gc_removes_the_orphan_and_restores_the_env_file(
    tmp_path: Path, docker: Any
) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(ORIGINAL)
    pid_file = tmp_path / "suite.pid"
    profile = write_profile(tmp_path, "name: killed\npostgres:\n  version: '15'\n")
    kill_9_during_the_suite(profile, pid_file)
    assert leftovers(docker, tmp_path) != []  # kill -9 leaves it all behind...
    assert env_file.read_bytes() != ORIGINAL

    listed = envctl("status")
    assert "orphan" in listed.stderr + listed.stdout
    assert "1 orphaned" in envctl("gc", "--dry-run").stderr
    collected = envctl("gc")
    assert collected.returncode == 0, collected.stderr
    assert leftovers(docker, tmp_path) == []  # ...and gc takes it all away
    assert env_file.read_bytes() == ORIGINAL


def test_environments_started_with_up_are_not_orphans(tmp_path: Path, docker: Any) -> None:
    profile = write_profile(tmp_path, "name: kept\npostgres:\n  version: '15'\n")
    assert envctl("up", str(profile)).returncode == 0
    try:
        assert envctl("gc").stderr.strip().endswith("nothing to collect")
        assert (
            len(leftovers(docker, tmp_path)) == 1
        )  # its container (a network only with test.container)
    finally:
        envctl("down", str(profile))


def test_a_new_up_takes_over_from_a_killed_run(tmp_path: Path, docker: Any) -> None:
    profile = write_profile(tmp_path, "name: again\npostgres:\n  version: '15'\n")
    kill_9_during_the_suite(profile, tmp_path / "suite.pid")
    started = envctl("up", str(profile))
    assert started.returncode == 0, started.stderr
    assert "orphaned environment" in started.stderr
    envctl("down", str(profile))


def test_twenty_environments_in_parallel_never_collide(tmp_path: Path, docker: Any) -> None:
    profiles = []
    for n in range(20):
        folder = tmp_path / f"p{n}"
        folder.mkdir()
        profiles.append(
            load_profile(write_profile(folder, f"name: par{n}\npostgres:\n  version: '15'\n"))
        )
    started: dict[int, Any] = {}
    errors: list[BaseException] = []

    def start(n: int) -> None:
        try:
            started[n] = up(profiles[n])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(20)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert errors == []
        ports = {env.port for env in started.values()}
        assert len(ports) == 20
        for env in started.values():
            with psycopg.connect(env.url) as conn:
                assert conn.execute("SELECT current_database()").fetchone() == ("test",)
    finally:
        removers = [threading.Thread(target=down, args=(env.env_id,)) for env in started.values()]
        for thread in removers:
            thread.start()
        for thread in removers:
            thread.join(timeout=300)
    assert leftovers(docker, tmp_path) == []


def test_twenty_envctl_processes_at_once_all_get_ready(tmp_path: Path, docker: Any) -> None:
    # Twenty processes (parallel CI jobs on one runner, `xargs -P 20`), each with its own
    # readiness loop: unlike threads, they share no GIL that would slow their knocking. Cold
    # starts (the cache is off in tests), so initdb runs twenty times on two cores.
    profiles = []
    for n in range(20):
        folder = tmp_path / f"p{n}"
        folder.mkdir()
        profiles.append(write_profile(folder, f"name: proc{n}\npostgres:\n  version: '15'\n"))
    processes = [start_envctl("up", str(profile)) for profile in profiles]
    try:
        errors = [finish(process, seconds=240) for process in processes]
        failed = [err for process, err in zip(processes, errors, strict=True) if process.returncode]
        assert failed == [], failed[0]
        urls = [dotenv_values(profile.parent / ".env.test")["DATABASE_URL"] for profile in profiles]
        assert len(set(urls)) == 20
        for url in urls:
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        stoppers = [start_envctl("down", str(profile)) for profile in profiles]
        for stopper in stoppers:
            finish(stopper, seconds=120)
    assert leftovers(docker, tmp_path) == []


def test_two_ups_of_one_profile_at_once_exactly_one_wins(tmp_path: Path, docker: Any) -> None:
    profile = load_profile(write_profile(tmp_path, "name: race\npostgres:\n  version: '15'\n"))
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def start() -> None:
        barrier.wait()
        try:
            results.append(up(profile))
        except AlreadyRunningError as exc:
            results.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, AlreadyRunningError)]
    assert len(winners) == 1 and len(losers) == 1
    with psycopg.connect(winners[0].url) as conn:  # the loser did not tear the winner down
        conn.execute("SELECT 1")
    down(winners[0].env_id)
    assert leftovers(docker, tmp_path) == []


class EngineProxy:
    """A Unix socket that relays to the Docker engine until `cut()`: the engine 'stops'."""

    def __init__(self, path: Path, engine: str = "/var/run/docker.sock") -> None:
        import socket as socketlib

        self.path, self.engine = path, engine
        self.listener = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(64)
        self.open: list[Any] = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket as socketlib

        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
            upstream.connect(self.engine)
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: Any, target: Any) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(2)

    def cut(self) -> None:
        self.running = False
        self.listener.close()
        for sock in self.open:
            try:
                sock.shutdown(2)
                sock.close()
            except OSError:
                pass
        self.path.unlink(missing_ok=True)


def test_the_engine_stopping_mid_run_is_a_clear_error_and_gc_tidies_up_later(
    tmp_path: Path, docker: Any
) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(ORIGINAL)
    proxy = EngineProxy(tmp_path / "engine.sock")
    profile = write_profile(tmp_path, "name: engine\npostgres:\n  version: '15'\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "run", str(profile), "--", "sleep", "600"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "DOCKER_HOST": f"unix://{proxy.path}"},
    )
    try:
        wait_for_line(process, "running:")
        proxy.cut()  # from envctl's side, the engine is gone
        process.send_signal(signal.SIGINT)  # teardown now has to talk to a missing engine
        err = finish(process)
    finally:
        proxy.cut()
    assert process.returncode == 3, err
    assert "the Docker engine stopped answering" in err
    assert "envctl gc" in err
    assert "Traceback" not in err
    assert env_file.read_bytes() == ORIGINAL  # the user's file is back regardless
    assert leftovers(docker, tmp_path) != []  # the container could not be removed...
    collected = envctl("gc")  # ...until the engine answers again
    assert collected.returncode == 0, collected.stderr
    assert leftovers(docker, tmp_path) == []
    assert env_file.read_bytes() == ORIGINAL
