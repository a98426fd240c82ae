"""What a series of runs of the suite adds up to: each run's record, each test's verdict
across the runs (passed, failed, flaky, skipped), and the series' verdict and exit code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from provisioner.command import SuiteResult
from provisioner.errors import EXIT_FLAKY, EXIT_OK, EXIT_SUITE_FAILED
from provisioner.suite.junit import CaseResult, clear_stale, junit_files, read_results


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
