"""Faults against real envctl processes (#20.2): kill -9 of `up` and of a suite, a hang-up, a
Ctrl-C at start-up, a server that dies mid-run, a frozen postmaster, a folder gc cannot remove."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provisioner.profile import load_profile
from provisioner.runtime.native.layout import private_folder
from provisioner.state import EnvironmentRecord, load_record
from tests.conftest import ROOT, RuntimeUnderTest, envctl, leftovers, write_profile

ORIGINAL = b"# keep me\nDATABASE_URL=postgresql://mine\n"
# Long enough to be caught while starting, on either runtime.
SLOW_START = "name: {name}\npostgres:\n  version: '15'\n  seed:\n    - sql: SELECT pg_sleep(30)\n"


def start_envctl(*args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "provisioner", *args], cwd=ROOT, **kwargs)


def wait_for(condition: Callable[[], object], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def record_of(profile: Path) -> EnvironmentRecord | None:
    return load_record(load_profile(profile).env_id)


def server_started(profile: Path) -> bool:
    """The record says the server was started (it has a port), not that `up` finished."""
    record = record_of(profile)
    return record is not None and bool(record.connection)


def pids_running(argv: list[str]) -> list[int]:
    """Live processes whose command line is exactly `argv`."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == wanted and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def nothing_left(tmp_path: Path, docker: Any, profile: Path) -> None:
    assert leftovers(docker, tmp_path) == []
    assert not private_folder(load_profile(profile).env_id).exists()
    assert record_of(profile) is None


def kill_9_while_up_starts(profile: Path) -> subprocess.Popen[bytes]:
    """`envctl up`, SIGKILLed once its server runs but before it is up; not yet reaped."""
    process = start_envctl("up", str(profile))
    wait_for(lambda: server_started(profile))
    record = record_of(profile)
    assert record is not None and not record.variables  # still starting
    process.send_signal(signal.SIGKILL)
    wait_for(lambda: not alive(process.pid))  # a zombie: its parent (us) has not waited
    return process


@pytest.mark.docker
def test_a_killed_up_is_an_orphan_that_gc_collects(
    tmp_path: Path, docker: Any, runtime: RuntimeUnderTest
) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(ORIGINAL)
    profile = write_profile(tmp_path, SLOW_START.format(name="killedup"))
    process = kill_9_while_up_starts(profile)
    try:
        # The owner is a zombie here: dead, though its pid still answers kill(0).
        listed = json.loads(envctl("status", "--json").stdout)
        assert [(row["orphan"], row["starting"]) for row in listed] == [(True, True)], listed
        shown = envctl("env", str(profile))
        assert shown.returncode == 3
        assert "half-started" in shown.stderr and "envctl gc" in shown.stderr
        assert "1 orphaned" in envctl("gc", "--dry-run").stderr
    finally:
        process.wait()
    collected = envctl("gc")
    assert collected.returncode == 0, collected.stderr
    assert "nothing to collect" not in collected.stderr
    nothing_left(tmp_path, docker, profile)
    assert env_file.read_bytes() == ORIGINAL
    assert envctl("status", "--json").stdout.strip() == "[]"


@pytest.mark.docker
def test_a_second_up_replaces_a_killed_up(tmp_path: Path, docker: Any) -> None:
    profile = write_profile(tmp_path, SLOW_START.format(name="upagain"))
    kill_9_while_up_starts(profile).wait()
    quick = write_profile(tmp_path, "name: upagain\npostgres:\n  version: '15'\n")
    assert load_profile(quick).env_id == load_profile(profile).env_id
    started = envctl("up", str(quick))
    try:
        assert started.returncode == 0, started.stderr
        assert "orphaned environment" in started.stderr
        assert envctl("env", str(quick)).returncode == 0
    finally:
        envctl("down", str(quick))
    nothing_left(tmp_path, docker, quick)


def test_an_owner_pid_reused_by_another_process_is_not_the_owner() -> None:
    """A record whose owner pid now belongs to another process (here: this one) is an orphan."""
    import dataclasses

    from provisioner.environments import is_orphan
    from provisioner.processes import start_time

    record = EnvironmentRecord(
        env_id="reused-0123abcd",
        name="reused",
        profile=None,
        runtime="docker",
        mode="run",
        owner_pid=os.getpid(),
        created=time.time(),
        connection={},
        owner_start=start_time(os.getpid()),
    )
    assert not is_orphan(record)
    assert is_orphan(dataclasses.replace(record, owner_start=(record.owner_start or 0) + 1))


@pytest.mark.docker
def test_a_killed_run_leaves_no_suite_after_gc(tmp_path: Path, docker: Any) -> None:
    profile = write_profile(tmp_path, "name: suitekill\npostgres:\n  version: '15'\n")
    suite = ["sleep", "77.0613"]
    process = start_envctl("run", str(profile), "--", *suite, start_new_session=True)  # setsid
    try:
        wait_for(lambda: pids_running(suite))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert pids_running(suite), "the suite must outlive envctl for this test to mean much"
        collected = envctl("gc")
        assert collected.returncode == 0, collected.stderr
        assert pids_running(suite) == []
        nothing_left(tmp_path, docker, profile)
    finally:
        for pid in pids_running(suite):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.docker
def test_a_hang_up_tears_down_though_the_terminal_is_gone(tmp_path: Path, docker: Any) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(ORIGINAL)
    profile = write_profile(tmp_path, "name: hangup\npostgres:\n  version: '15'\n")
    suite = ["sleep", "78.0613"]
    master, terminal = os.openpty()
    process = start_envctl(
        "run", str(profile), "--", *suite, stdout=terminal, stderr=terminal, start_new_session=True
    )
    os.close(terminal)
    try:
        wait_for(lambda: pids_running(suite))
        os.close(master)  # the terminal goes away: every later write to it fails with EIO
        process.send_signal(signal.SIGHUP)
        assert process.wait(timeout=60) == 128 + signal.SIGHUP
        assert env_file.read_bytes() == ORIGINAL
        assert pids_running(suite) == []
        nothing_left(tmp_path, docker, profile)
    finally:
        if process.poll() is None:
            process.kill()
        for pid in pids_running(suite):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_while_envctl_starts_is_a_quiet_130(tmp_path: Path) -> None:
    # A Ctrl-C that lands while the CLI's libraries are imported, every time.
    (tmp_path / "sitecustomize.py").write_text(
        "import os, signal, sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'typer':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Interrupt())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    # ROOT: `-m provisioner` from ROOT imports its provisioner whatever PYTHONPATH says.
    started = envctl("status", env=env)
    assert "Traceback" not in started.stderr and "KeyboardInterrupt" not in started.stderr
    assert started.returncode == 130, started.stderr


@pytest.mark.docker
def test_a_server_that_dies_during_the_suite_is_named_as_the_cause(
    tmp_path: Path, docker: Any, runtime: RuntimeUnderTest
) -> None:
    profile = write_profile(tmp_path, "name: serverdies\npostgres:\n  version: '15'\n")
    running, go_on = tmp_path / "running", tmp_path / "go-on"
    suite = (
        "import pathlib, sys, time\n"
        f"pathlib.Path({str(running)!r}).touch()\n"
        f"while not pathlib.Path({str(go_on)!r}).exists(): time.sleep(0.05)\n"
        "sys.exit(1)\n"
    )
    process = start_envctl(
        "run", str(profile), "--", sys.executable, "-c", suite, stderr=subprocess.PIPE
    )
    try:
        wait_for(running.exists)
        record = record_of(profile)
        assert record is not None
        if runtime.name == "docker":
            docker.containers.get(f"envctl-{record.env_id}").kill()
        else:
            os.kill(int(record.details["server_pid"]), signal.SIGKILL)
        go_on.touch()
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    text = err.decode()
    assert process.returncode == 1, text
    assert "the server stopped during the suite" in text
    nothing_left(tmp_path, docker, profile)


@pytest.mark.docker
@pytest.mark.native
def test_down_of_a_frozen_postmaster_does_not_wait_for_the_stop_timeout(
    tmp_path: Path, docker: Any, native: Any
) -> None:
    profile = write_profile(tmp_path, "name: frozen\npostgres:\n  version: '15'\n")
    assert envctl("up", str(profile)).returncode == 0
    record = record_of(profile)
    assert record is not None
    server = int(record.details["server_pid"])
    os.killpg(server, signal.SIGSTOP)  # what a kill -9 during the cache store leaves
    began = time.monotonic()
    removed = envctl("down", str(profile))
    assert removed.returncode == 0, removed.stderr
    assert time.monotonic() - began < 8  # the stop timeout is 10 s
    nothing_left(tmp_path, docker, profile)


@pytest.mark.docker
@pytest.mark.native
def test_gc_says_what_it_could_not_remove_and_tries_again_later(
    tmp_path: Path, docker: Any, native: Any
) -> None:
    profile = write_profile(tmp_path, SLOW_START.format(name="stuck"))
    kill_9_while_up_starts(profile).wait()
    stuck = private_folder(load_profile(profile).env_id) / "stuck"
    stuck.write_text("immutable")
    subprocess.run(["chattr", "+i", str(stuck)], check=True)
    try:
        failed = envctl("gc")
        assert failed.returncode == 3, failed.stderr
        assert "removed folder" not in failed.stderr
        assert f"could not remove {stuck.parent}" in failed.stderr
        assert str(stuck) in failed.stderr
        assert record_of(profile) is not None  # kept, so that the next gc finds it
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    collected = envctl("gc")
    assert collected.returncode == 0, collected.stderr
    assert f"removed folder {stuck.parent}" in collected.stderr
    nothing_left(tmp_path, docker, profile)


def test_a_cache_copy_left_by_a_killed_envctl_is_listed_and_pruned(tmp_path: Path) -> None:
    from provisioner.processes import start_time

    cache = tmp_path / "envctl-cache" / "native"  # ENVCTL_CACHE_DIR of private_state
    # No engine: prune must not touch the shared engine's (other people's) cache images.
    no_docker = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    gone = subprocess.Popen(["true"])
    gone.wait()
    abandoned = cache / f".{'a' * 16}-{gone.pid}.{start_time(os.getpid())}-x1y2"
    building = cache / f".{'b' * 16}-{os.getpid()}.{start_time(os.getpid())}-x3y4"
    for folder in (abandoned, building):
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "base").write_bytes(b"\0" * 4096)
    listed = json.loads(envctl("cache", "ls", "--json", env=no_docker).stdout)
    assert [(entry["image"], entry["tagged"]) for entry in listed] == [(str(abandoned), False)]
    pruned = envctl("cache", "prune", env=no_docker)
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1 cache entry" in pruned.stderr
    assert not abandoned.exists()
    assert building.exists()  # its envctl (this process) still copies


def test_ctrl_c_during_a_native_seed_is_an_interruption_not_a_seed_error(
    tmp_path: Path, docker: Any, native: Any
) -> None:
    # A terminal's Ctrl-C goes to its whole foreground group: envctl and the psql it runs.
    profile = write_profile(tmp_path, SLOW_START.format(name="ctrlc"))
    process = start_envctl("up", str(profile), stderr=subprocess.PIPE, process_group=0)
    wait_for(lambda: server_started(profile))
    wait_for(lambda: pids_running_with("bin/psql") or process.poll() is not None)
    assert process.poll() is None, "envctl ended before its seed ran"
    time.sleep(0.5)  # the statement runs
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    text = stderr.decode()
    assert process.returncode == 130, text
    assert "canceling statement" not in text and "seed" not in text.split("restoring")[-1], text
    assert "Traceback" not in text
    nothing_left(tmp_path, docker, profile)


def pids_running_with(words: str) -> list[int]:
    """Live processes (a postgres backend's title included) whose command line holds `words`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if words.encode() in (entry / "cmdline").read_bytes() and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
