"""Running the suite: on the host as a process group envctl can stop as a whole, repeated
with a reset in between, and classified test by test from JUnit results."""

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
from provisioner.errors import (
    EXIT_FLAKY,
    EXIT_OK,
    EXIT_SUITE_FAILED,
    SuiteTimeoutError,
    UsageError,
)
from provisioner.junit import CaseResult, clear_stale, junit_files, read_results
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


@dataclass(frozen=True)
class RunRecord:
    """One run of the suite, with its JUnit results if it wrote any."""

    index: int
    exit_code: int
    seconds: float
    reset_seconds: float | None
    cases: tuple[CaseResult, ...]
    reported: bool = True  # False: JUnit results were asked for and this run wrote none


@dataclass(frozen=True)
class TestSummary:
    """One test across every run: passed in all, failed in all, or flaky."""

    __test__ = False  # not a pytest test class

    test_id: str
    verdict: str  # passed | failed | flaky | skipped, over the runs it was seen in
    outcomes: tuple[str, ...]  # one per run; "missing" where the run's results lack it
    mean_seconds: float
    message: str
    file: str | None
    line: int | None

    @property
    def seen_in_every_run(self) -> bool:
        return "missing" not in self.outcomes


@dataclass(frozen=True)
class RunReport:
    """Every run and every test, and what they add up to."""

    runs: tuple[RunRecord, ...]
    tests: tuple[TestSummary, ...]
    verdict: str  # passed | failed | flaky
    exit_code: int

    @property
    def unreported(self) -> tuple[RunRecord, ...]:
        """The runs that were to write JUnit results and wrote none (a crash, a wrong path)."""
        return tuple(run for run in self.runs if not run.reported)


def run_repeated(
    execute: Callable[[], SuiteResult],
    *,
    repeat: int,
    reset: Callable[[], float] | None,
    junit: str | None,
    workdir: Path,
    on_run: Callable[[RunRecord], None] = lambda record: None,
) -> RunReport:
    """Run the suite `repeat` times, resetting the database to its seeded state in between."""
    runs: list[RunRecord] = []
    for index in range(1, repeat + 1):
        reset_seconds = reset() if reset is not None and index > 1 else None
        if junit:
            clear_stale(junit, workdir)
        result = execute()
        files = junit_files(junit, workdir) if junit else []
        cases = tuple(read_results(files))
        reported = not junit or bool(files)
        record = RunRecord(index, result.exit_code, result.seconds, reset_seconds, cases, reported)
        runs.append(record)
        on_run(record)
    return summarize(runs)


def summarize(runs: Sequence[RunRecord]) -> RunReport:
    """Classify every test and the whole series of runs."""
    by_test: dict[str, list[CaseResult | None]] = {}
    for number, run in enumerate(runs):
        for case in run.cases:
            seen = by_test.setdefault(case.test_id, [None] * len(runs))
            if seen[number] is None:
                seen[number] = case
    tests = tuple(_test_summary(test_id, cases) for test_id, cases in by_test.items())
    run_ok = [run.exit_code == 0 for run in runs]
    if any(test.verdict == "flaky" for test in tests):
        verdict = "flaky"
    elif all(run_ok):
        verdict = "passed"
    elif not any(run_ok):
        verdict = "failed"
    else:
        verdict = "flaky"
    if verdict == "passed":
        code = EXIT_OK
    elif verdict == "flaky":
        code = EXIT_FLAKY
    else:
        # A single run keeps the suite's own exit code; a series of failures is a plain 1.
        code = runs[0].exit_code if len(runs) == 1 else EXIT_SUITE_FAILED
    order = {"flaky": 0, "failed": 1, "passed": 2, "skipped": 3}
    tests = tuple(sorted(tests, key=lambda t: (order[t.verdict], t.test_id)))
    return RunReport(runs=tuple(runs), tests=tests, verdict=verdict, exit_code=code)


def _test_summary(test_id: str, runs: list[CaseResult | None]) -> TestSummary:
    outcomes = tuple("missing" if case is None else case.outcome for case in runs)
    cases = [case for case in runs if case is not None]
    ran = {outcome for outcome in outcomes if outcome not in ("skipped", "missing")}
    if not ran:
        verdict = "skipped"
    elif ran == {"passed"}:
        verdict = "passed"
    elif ran == {"failed"}:
        verdict = "failed"
    else:
        verdict = "flaky"
    failed = next((case for case in cases if case.outcome == "failed"), cases[0])
    return TestSummary(
        test_id=test_id,
        verdict=verdict,
        outcomes=outcomes,
        mean_seconds=sum(case.seconds for case in cases) / len(cases),
        message=failed.message if verdict in ("failed", "flaky") else "",
        file=failed.file,
        line=failed.line,
    )
