"""Classifying runs and tests, JUnit parsing, the suite's process group and timeout."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from provisioner.command import check_command, command_argv, run_suite
from provisioner.errors import EXIT_FLAKY, SuiteTimeoutError, UsageError
from provisioner.suite.junit import CaseResult, clear_stale, junit_files, read_results
from provisioner.suite.report import markdown, report_dict
from provisioner.suite.verdict import RunRecord, run_repeated, summarize


def case(name: str, outcome: str) -> CaseResult:
    return CaseResult(name=name, classname="suite", outcome=outcome, seconds=0.1)


def run(index: int, code: int, *cases: CaseResult) -> RunRecord:
    return RunRecord(index, code, 1.0, None, tuple(cases))


def test_all_runs_passing_is_passed() -> None:
    report = summarize([run(1, 0, case("a", "passed")), run(2, 0, case("a", "passed"))])
    assert (report.verdict, report.exit_code) == ("passed", 0)


def test_mixed_outcomes_of_one_test_are_flaky_and_ordered_first() -> None:
    report = summarize(
        [
            run(1, 1, case("stable", "passed"), case("broken", "failed"), case("f", "passed")),
            run(2, 1, case("stable", "passed"), case("broken", "failed"), case("f", "failed")),
        ]
    )
    assert report.verdict == "flaky"
    assert report.exit_code == EXIT_FLAKY
    verdicts = {t.test_id: t.verdict for t in report.tests}
    assert verdicts == {"suite::stable": "passed", "suite::broken": "failed", "suite::f": "flaky"}
    assert report.tests[0].test_id == "suite::f"
    assert report.tests[0].outcomes == ("passed", "failed")


def test_stable_failure_keeps_the_suites_exit_code_for_a_single_run() -> None:
    assert summarize([run(1, 3)]).exit_code == 3
    assert summarize([run(1, 3), run(2, 5)]).exit_code == 1


def test_without_junit_mixed_exit_codes_are_flaky() -> None:
    report = summarize([run(1, 0), run(2, 1)])
    assert (report.verdict, report.exit_code) == ("flaky", EXIT_FLAKY)


def test_skipped_only_tests_are_skipped() -> None:
    report = summarize([run(1, 0, case("s", "skipped"))])
    assert report.tests[0].verdict == "skipped"
    assert report.verdict == "passed"


def test_reports_as_json_and_markdown() -> None:
    report = summarize([run(1, 1, case("f", "failed")), run(2, 0, case("f", "passed"))])
    data = report_dict(report, "p.yaml")
    assert data["verdict"] == "flaky"
    assert data["tests"][0]["outcomes"] == ["failed", "passed"]
    text = markdown(report, "p.yaml")
    assert "**flaky**" in text and "`suite::f`" in text and "✗ ✓" in text


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_a" name="test_ok" time="0.010" file="tests/test_a.py" line="3"/>
<testcase classname="tests.test_a" name="test_bad" time="0.5">
  <failure message="assert 1 == 2">trace</failure></testcase>
<testcase classname="tests.test_a" name="test_err" time="0.1"><error message="boom"/></testcase>
<testcase classname="tests.test_a" name="test_skip" time="0"><skipped/></testcase>
</testsuite></testsuites>
"""


def test_junit_results_are_read(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "junit.xml").write_text(JUNIT)
    (tmp_path / "out" / "broken.xml").write_text("<testsuite><testcase")
    files = junit_files("out/*.xml", tmp_path)
    assert len(files) == 2
    cases = {c.name: c for c in read_results(files)}
    assert cases["test_ok"].outcome == "passed" and cases["test_ok"].line == 3
    assert cases["test_bad"].outcome == "failed" and cases["test_bad"].message == "assert 1 == 2"
    assert cases["test_err"].outcome == "failed"
    assert cases["test_skip"].outcome == "skipped"
    clear_stale("out/*.xml", tmp_path)
    assert junit_files("out/*.xml", tmp_path) == []


def test_repeated_runs_reset_between_and_read_fresh_junit(tmp_path: Path) -> None:
    resets: list[int] = []
    counter = iter(range(10))

    def execute():  # writes a result that fails on every second run
        from provisioner.command import SuiteResult

        n = next(counter)
        outcome = "" if n % 2 == 0 else '<failure message="odd"/>'
        (tmp_path / "junit.xml").write_text(
            f'<testsuite><testcase classname="c" name="t">{outcome}</testcase></testsuite>'
        )
        return SuiteResult(exit_code=n % 2, seconds=0.0)

    report = run_repeated(
        execute, repeat=4, reset=lambda: resets.append(1) or 0.01, junit="*.xml", workdir=tmp_path
    )
    assert len(resets) == 3  # between runs, not before the first
    assert report.tests[0].outcomes == ("passed", "failed", "passed", "failed")
    assert report.verdict == "flaky"


def test_command_strings_are_split_without_a_shell() -> None:
    assert command_argv("pytest -k 'a and b'") == ["pytest", "-k", "a and b"]
    assert command_argv(["echo", "$HOME;rm"]) == ["echo", "$HOME;rm"]
    with pytest.raises(UsageError):
        command_argv("unbalanced 'quote")


def test_a_missing_command_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        check_command(["definitely-not-a-command-envctl"], tmp_path)
    with pytest.raises(UsageError, match="not a folder"):
        check_command(["true"], tmp_path / "missing")
    check_command([sys.executable], tmp_path)


def test_suite_gets_variables_and_its_exit_code_passes_through(tmp_path: Path) -> None:
    script = "import os, sys; sys.exit(int(os.environ['CODE']))"
    result = run_suite([sys.executable, "-c", script], cwd=tmp_path, env={"CODE": "7"})
    assert result.exit_code == 7


def test_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time, pathlib\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    started = time.monotonic()
    with pytest.raises(SuiteTimeoutError, match=r"test\.timeout"):
        run_suite([sys.executable, "-c", script], cwd=tmp_path, env={}, timeout=1.5)
    assert time.monotonic() - started < 15
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the suite's child process outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _printed(report: object) -> str:
    from rich.console import Console

    from provisioner.suite.report import print_summary

    console = Console(record=True, width=200, color_system=None)
    print_summary(report, console)  # type: ignore[arg-type]
    return console.export_text()


@pytest.mark.parametrize(
    "name", ["test_x[wait]", "test_x[/tmp]", "test_y[[bold]]", "test_ünïcode[é-ß]"]
)
def test_names_from_a_report_print_as_they_are_never_as_markup(name: str) -> None:
    report = summarize([run(1, 1, case(name, "failed")), run(2, 0, case(name, "passed"))])
    assert f"suite::{name}" in _printed(report)


def test_a_run_that_wrote_no_junit_results_is_named_and_not_counted() -> None:
    crashed = RunRecord(2, 139, 1.0, None, (), reported=False)
    report = summarize(
        [
            run(1, 0, case("a", "passed"), case("b", "passed")),
            crashed,
            run(3, 0, case("a", "passed"), case("b", "passed")),
        ]
    )
    text = _printed(report)
    assert "0 passed in every run" in text and "2 not seen in every run" in text
    assert "run 2 (exit code 139) wrote no JUnit results" in text
    assert report.tests[0].outcomes == ("passed", "missing", "passed")
    assert report_dict(report)["runs"][1]["reported"] is False
    assert "run 2 (exit code 139) wrote no JUnit results" in markdown(report)


def test_run_repeated_knows_a_run_without_its_junit_file(tmp_path: Path) -> None:
    runs = iter([True, False])

    def execute() -> object:
        from provisioner.command import SuiteResult

        if next(runs):
            (tmp_path / "junit.xml").write_text(
                '<testsuite><testcase classname="s" name="t" time="0"/></testsuite>'
            )
        return SuiteResult(exit_code=0, seconds=0.0)

    report = run_repeated(
        execute,
        repeat=2,
        reset=None,
        junit="junit.xml",
        workdir=tmp_path,  # type: ignore[arg-type]
    )
    assert [r.reported for r in report.runs] == [True, False]
    assert report.tests[0].outcomes == ("passed", "missing")
