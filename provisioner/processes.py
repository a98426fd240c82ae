"""Processes: running a tool (`run`), and processes named by pid *and* start time: whether one
still runs, and stopping a group.

A pid names a process only while it runs; afterwards the number goes to another. The start
time (field 22 of /proc/PID/stat, clock ticks since boot) tells the two apart, so a record's
owner or a suite's group leader is never confused with a stranger that got its pid. Without
/proc (macOS) there is no start time and the pid alone decides, as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from the state on (field 3), or None when there is no such process."""
    try:
        text = (PROC / str(pid) / "stat").read_text(errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and ')'.
    return text.rpartition(")")[2].split()


def start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None if it is gone or unknown."""
    fields = _stat_fields(pid) if pid > 0 else None
    return int(fields[19]) if fields and len(fields) > 19 else None


def process_alive(pid: int, started: int | None = None) -> bool:
    """Whether `pid` runs and, when `started` is given, is the process that started then.

    A zombie (exited, not yet reaped: an owner killed by -9 whose parent has not waited) is dead.
    """
    if pid <= 0:
        return False
    fields = _stat_fields(pid)
    if fields is None:
        if PROC.joinpath("self").exists():
            return False  # /proc works and has no such process
        return _answers(pid)
    if fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def _answers(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(
    pgid: int, leader_start: int | None, signum: int = signal.SIGTERM, grace: float = 5.0
) -> bool:
    """Stop process group `pgid`: `signum`, up to `grace` seconds for its leader to exit, then
    SIGKILL to whatever is left of the group. False if there was nothing of it to stop.

    A leader alive with another start time means the pgid was reused: nothing is sent. A leader
    that is gone leaves the number held while its group has members (Linux does not reuse a pid
    that still names a group), so those members are the suite's.
    """
    if pgid <= 1 or pgid == os.getpgrp():
        return False
    leader = _stat_fields(pgid)
    if leader is not None and leader[0] not in ("Z", "X"):
        if leader_start is not None and int(leader[19]) != leader_start:
            return False  # another process has the number now
        if int(leader[2]) != pgid:
            return False  # it runs, but no longer leads that group
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + grace
    while process_alive(pgid, leader_start) and time.monotonic() < deadline:
        time.sleep(0.02)
    # Children that outlived the leader still belong to the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    return True


def run(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    stdin: str | None = None,
    merge_stderr: bool = False,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    **popen: Any,
) -> subprocess.CompletedProcess[str]:
    """Run a tool to its end and return what it printed, decoded (undecodable bytes replaced).

    The one way envctl runs a short-lived program: no terminal input unless `stdin` is given,
    no exception for a non-zero exit (callers read `returncode`), `OSError` when it cannot be
    started and `subprocess.TimeoutExpired` after `timeout` seconds. `merge_stderr` puts the
    error output into `stdout`, in the order it was written; `popen` passes on user/group/umask.
    """
    return subprocess.run(
        list(argv),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        cwd=cwd,
        env=None if env is None else dict(env),
        timeout=timeout,
        check=False,
        text=True,
        encoding="utf-8",
        errors="replace",
        **popen,
    )
