"""Reports of a run: a table for people, JSON for programs, Markdown for GitHub's step summary,
and GitHub annotations for the tests that failed or were flaky."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provisioner import github
from provisioner.envfile import write_atomic
from provisioner.suite.verdict import RunRecord, RunReport

_MARKS = {"passed": "✓", "failed": "✗", "skipped": "-", "missing": "?"}


def report_dict(report: RunReport, profile: str | None = None) -> dict[str, Any]:
    """Every run, test and timing as JSON-friendly data."""
    return {
        "profile": profile,
        "verdict": report.verdict,
        "exit_code": report.exit_code,
        "runs": [
            {
                "index": run.index,
                "exit_code": run.exit_code,
                "seconds": round(run.seconds, 3),
                "reset_seconds": None if run.reset_seconds is None else round(run.reset_seconds, 3),
                "tests": len(run.cases),
                "reported": run.reported,
                "failed": sum(case.outcome == "failed" for case in run.cases),
            }
            for run in report.runs
        ],
        "tests": [
            {
                "id": test.test_id,
                "verdict": test.verdict,
                "outcomes": list(test.outcomes),
                "mean_seconds": round(test.mean_seconds, 3),
                "message": test.message,
                "file": test.file,
                "line": test.line,
            }
            for test in report.tests
        ],
    }


def write_json(report: RunReport, path: Path, profile: str | None = None) -> None:
    """Write the JSON report (0600: it may name hosts and databases)."""
    write_atomic(path, (json.dumps(report_dict(report, profile), indent=2) + "\n").encode())


def markdown(report: RunReport, profile: str | None = None) -> str:
    """A GitHub-flavoured Markdown summary."""
    title = f"envctl run{f' of {profile}' if profile else ''}: **{report.verdict}**"
    lines = [f"### {title}", "", "| run | exit code | seconds |", "| --- | --- | --- |"]
    lines += [f"| {run.index} | {run.exit_code} | {run.seconds:.1f} |" for run in report.runs]
    shown = [test for test in report.tests if test.verdict in ("flaky", "failed")]
    if shown:
        lines += ["", "| test | verdict | runs | message |", "| --- | --- | --- | --- |"]
        for test in shown:
            outcomes = " ".join(_MARKS.get(outcome, outcome) for outcome in test.outcomes)
            message = test.message.replace("|", "\\|")[:200]
            lines.append(f"| `{test.test_id}` | {test.verdict} | {outcomes} | {message} |")
    if report.tests:
        lines += ["", _counts(report) + "."]
    lines += [f"{_unreported(run)}." for run in report.unreported]
    return "\n".join(lines) + "\n"


def annotate(report: RunReport) -> None:
    """One `::error` annotation per failing test and one `::warning` per flaky test."""
    for test in report.tests:
        if test.verdict not in ("failed", "flaky"):
            continue
        level = "error" if test.verdict == "failed" else "warning"
        runs = " ".join(test.outcomes)
        github.annotation(
            level,
            f"{test.message or test.verdict} (runs: {runs})",
            title=f"{test.verdict}: {test.test_id}",
            file=test.file,
            line=test.line,
        )


def _counts(report: RunReport) -> str:
    """How the tests add up; "in every run" only for the tests every run's results show."""
    every = [test for test in report.tests if test.seen_in_every_run]
    counts = {v: sum(t.verdict == v for t in every) for v in ("passed", "failed")}
    flaky = sum(t.verdict == "flaky" for t in report.tests)
    text = (
        f"{counts['passed']} passed in every run, {counts['failed']} failed in every run, "
        f"{flaky} flaky"
    )
    partial = sum(not test.seen_in_every_run and test.verdict != "flaky" for test in report.tests)
    if partial:
        text += f", {partial} not seen in every run"
    return text


def _unreported(run: RunRecord) -> str:
    return (
        f"run {run.index} (exit code {run.exit_code}) wrote no JUnit results: its tests are "
        "not counted for it"
    )


def print_summary(report: RunReport, console: Any) -> None:
    """The terminal summary: runs, then the tests that did not pass every time."""
    from rich.table import Table
    from rich.text import Text

    if len(report.runs) > 1:
        runs = Table("run", "exit code", "seconds", "reset", title="runs")
        for run in report.runs:
            reset = "-" if run.reset_seconds is None else f"{run.reset_seconds * 1000:.0f} ms"
            runs.add_row(str(run.index), str(run.exit_code), f"{run.seconds:.1f}", reset)
        console.print(runs)
    notable = [test for test in report.tests if test.verdict in ("flaky", "failed")]
    if notable:
        tests = Table("test", "verdict", "runs", "mean s", title="tests that did not always pass")
        for test in notable:
            outcomes = " ".join(_MARKS.get(outcome, outcome) for outcome in test.outcomes)
            style = "yellow" if test.verdict == "flaky" else "red"
            # Names come from the suite's report: text, never markup ("test_x[/tmp]").
            tests.add_row(
                Text(test.test_id),
                Text(test.verdict, style=style),
                outcomes,
                f"{test.mean_seconds:.2f}",
            )
        console.print(tests)
    if report.tests:
        console.print(_counts(report), markup=False)
    for run in report.unreported:
        console.print(_unreported(run), markup=False, style="yellow")
