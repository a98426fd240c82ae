"""Processes by pid and start time: zombies and reused pids are not alive; groups are stopped
only when they are still the one recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from provisioner.processes import kill_group, process_alive, start_time


def test_a_zombie_is_dead_and_a_running_process_alive() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        started = start_time(child.pid)
        assert started is not None and process_alive(child.pid, started)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not process_alive(child.pid)  # not reaped yet: a zombie
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid)


def test_a_pid_with_another_start_time_is_another_process() -> None:
    mine = start_time(os.getpid())
    assert mine is not None
    assert process_alive(os.getpid(), mine)
    assert not process_alive(os.getpid(), mine + 1)
    assert not process_alive(0) and not process_alive(-1)


def test_a_group_whose_leader_has_another_start_time_is_left_alone() -> None:
    leader = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        started = start_time(leader.pid)
        assert started is not None
        assert not kill_group(leader.pid, started + 1)
        assert leader.poll() is None
        assert kill_group(leader.pid, started, grace=5)
        assert leader.wait(timeout=10) == -signal.SIGTERM
    finally:
        leader.kill()
        leader.wait()


def test_members_that_outlive_their_leader_are_killed() -> None:
    leader = subprocess.Popen(
        # The member ignores SIGTERM, the leader does not.
        ["sh", "-c", "(trap '' TERM; exec sleep 30) & echo $!; exec sleep 30"],
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert leader.stdout is not None
    member = int(leader.stdout.readline())
    try:
        assert kill_group(leader.pid, start_time(leader.pid), grace=5)
        leader.wait(timeout=10)
        deadline = time.monotonic() + 10
        while process_alive(member) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not process_alive(member)
    finally:
        leader.kill()
        leader.wait()
