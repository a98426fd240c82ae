"""Running the suite: a process group on the host that envctl can stop as a whole."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from provisioner import signals
from provisioner.errors import SuiteTimeoutError, UsageError

GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class SuiteResult:
    """How one run of the suite ended."""

    exit_code: int
    seconds: float


def command_argv(command: str | Sequence[str]) -> list[str]:
    """The suite's argv: a list as given, a string split into words (never run by a shell)."""
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError as exc:
            raise UsageError(f"test.command cannot be split into words: {exc}") from None
    return list(command)


def check_command(argv: Sequence[str], cwd: Path) -> None:
    """Refuse a command that cannot run before anything is started for it."""
    if not cwd.is_dir():
        raise UsageError(f"test.workdir {cwd} is not a folder")
    program = argv[0]
    found = (cwd / program).is_file() if os.sep in program else shutil.which(program)
    if not found:
        raise UsageError(
            f"the test command '{program}' was not found",
            hint="check test.command (or the command after --), test.workdir and PATH",
        )


def run_suite(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None = None,
) -> SuiteResult:
    """Run `argv` with `env` added to this process's environment; stop its whole group on
    timeout or on SIGINT/SIGTERM (then raise, so that teardown follows)."""
    full_env = {**os.environ, **env}
    started = time.monotonic()
    try:
        # A session of its own, so that a timeout or a signal stops every process of the suite.
        process = subprocess.Popen(list(argv), cwd=cwd, env=full_env, start_new_session=True)
    except FileNotFoundError:
        raise UsageError(
            f"the test command '{argv[0]}' was not found",
            hint="check test.command (or the command after --) and PATH",
        ) from None
    except NotADirectoryError:
        raise UsageError(f"test.workdir {cwd} is not a folder") from None
    except PermissionError:
        raise UsageError(f"the test command '{argv[0]}' is not executable") from None
    state = signals.current()
    deadline = None if timeout is None else started + timeout
    while True:
        try:
            code = process.wait(timeout=0.1)
            return SuiteResult(exit_code=_exit_code(code), seconds=time.monotonic() - started)
        except subprocess.TimeoutExpired:
            pass
        if state.pending is not None:
            _stop_group(process, state.pending)
            state.checkpoint()
        if deadline is not None and time.monotonic() > deadline:
            _stop_group(process, signal.SIGTERM)
            raise SuiteTimeoutError(
                f"the suite ran longer than test.timeout ({timeout:g}s) and was stopped",
                hint="raise test.timeout, or look for a test that hangs",
            )


def _stop_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
    try:
        process.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # Children that outlived the leader still belong to the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code
