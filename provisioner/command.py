"""A user's command (the suite, the migration step) run on the host: its argv from the profile,
checked before anything starts, and run as one process group envctl can stop as a whole (on a
timeout or a signal)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from provisioner import signals
from provisioner.errors import SuiteTimeoutError, UsageError
from provisioner.processes import kill_group

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
    on_start: Callable[[int], None] | None = None,
    output: IO[bytes] | None = None,
    key: str = "test",
) -> SuiteResult:
    """Run `argv` with `env` added to this process's environment; stop its whole group on
    timeout or on a signal (then raise, so that teardown follows).

    `on_start` gets the suite's process group id as soon as it exists (to record it);
    `output`, if given, takes its stdout and stderr; `key` is the profile's key for the
    command, for messages (`test`, `postgres.migrate`)."""
    full_env = {**os.environ, **env}
    started = time.monotonic()
    what = "the suite" if key == "test" else f"the {key} command"
    try:
        # A session of its own, so that a timeout or a signal stops every process of the suite.
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=full_env,
            start_new_session=True,
            stdout=output,
            stderr=None if output is None else subprocess.STDOUT,
        )
    except FileNotFoundError:
        raise UsageError(
            f"the {key} command '{argv[0]}' was not found",
            hint=f"check {key}.command"
            + (" (or the command after --)" if key == "test" else "")
            + " and PATH",
        ) from None
    except NotADirectoryError:
        raise UsageError(f"{key}.workdir {cwd} is not a folder") from None
    except PermissionError:
        raise UsageError(f"the {key} command '{argv[0]}' is not executable") from None
    if on_start is not None:
        on_start(process.pid)
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
                f"{what} ran longer than {key}.timeout ({timeout:g}s) and was stopped",
                hint=f"raise {key}.timeout, or look for what hangs",
            )


def _stop_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # Our child, not yet reaped: its pid cannot have gone to another process.
    kill_group(process.pid, None, signum, grace=GRACE_SECONDS)
    process.wait()


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code
