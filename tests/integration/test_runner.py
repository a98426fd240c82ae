"""`envctl run` with real suites: repeats, flaky detection, reports, container mode, timeout."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import envctl, leftovers, write_profile

pytestmark = pytest.mark.docker

SUITE = """\
import os
from pathlib import Path

import psycopg

COUNTER = Path(os.environ["COUNTER_FILE"])


def test_stable():
    assert True


def test_broken():
    assert 1 == 2, "always fails"


def test_alternating():
    n = int(COUNTER.read_text()) if COUNTER.exists() else 0
    COUNTER.write_text(str(n + 1))
    assert n % 2 == 0, "fails on every second run"


def test_starts_from_the_seeded_rows():
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (3,)
        conn.execute("INSERT INTO items SELECT generate_series(10, 14)")
"""


def test_repeated_runs_classify_stable_failing_and_flaky_tests(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    profile = write_profile(
        tmp_path,
        "name: flaky\npostgres:\n  version: '15'\n"
        "  seed:\n    - sql: CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2), (3)\n"
        "test:\n"
        f"  command: [{sys.executable!r}, -m, pytest, -q, -p, no:cacheprovider,"
        " --junitxml=results/junit.xml, test_suite.py]\n"
        "  junit: results/*.xml\n"
        f"  env:\n    COUNTER_FILE: {str(tmp_path / 'counter')!r}\n",
    )
    report_file = tmp_path / "report.json"
    result = envctl("run", str(profile), "--repeat", "4", "--report-json", str(report_file))
    assert result.returncode == 4, result.stderr  # flaky
    report = json.loads(report_file.read_text())
    verdicts = {test["id"].split("::")[-1]: test for test in report["tests"]}
    assert verdicts["test_stable"]["verdict"] == "passed"
    assert verdicts["test_broken"]["verdict"] == "failed"
    assert verdicts["test_alternating"]["verdict"] == "flaky"
    assert verdicts["test_alternating"]["outcomes"] == ["passed", "failed", "passed", "failed"]
    # Every repeat started from the seeded rows: the database was reset in between.
    assert verdicts["test_starts_from_the_seeded_rows"]["outcomes"] == ["passed"] * 4
    assert [run["reset_seconds"] is None for run in report["runs"]] == [True, False, False, False]
    assert report_file.stat().st_mode & 0o777 == 0o600
    assert "flaky" in result.stderr and "test_alternating" in result.stderr
    assert "the database server's last log lines" in result.stderr
    assert "**flaky**" in summary.read_text()
    assert leftovers(docker, tmp_path) == []


def test_a_stable_failure_exits_1_and_passing_runs_exit_0(tmp_path: Path, docker: Any) -> None:
    profile = write_profile(tmp_path, "name: plain\npostgres:\n  version: '15'\n")
    failing = envctl("run", str(profile), "--repeat", "2", "--", "false")
    assert failing.returncode == 1, failing.stderr
    passing = envctl("run", str(profile), "--repeat", "2", "--", "true")
    assert passing.returncode == 0, passing.stderr


def test_the_suite_runs_in_a_container_on_the_environments_network(
    tmp_path: Path, docker: Any, test_images: dict[int, str]
) -> None:
    # The suite container reaches the database by its alias on port 5432, over verify-full SSL,
    # with the certificate files mounted at the same paths the variables name.
    check = (
        'test "$PGHOST" = postgres && test "$PGPORT" = 5432 && '
        'psql -tAc "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" > result.txt'
    )
    profile = write_profile(
        tmp_path,
        "name: incontainer\npostgres:\n  version: '15'\n  ssl: verify-full\n"
        f"test:\n  container:\n    image: {test_images[15]}\n"
        f"  command: [sh, -c, {json.dumps(check)}]\n",
    )
    result = envctl("run", str(profile))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "result.txt").read_text().strip() == "t"
    assert leftovers(docker, tmp_path) == []


def test_container_mode_under_native_is_a_clear_error(tmp_path: Path, docker: Any) -> None:
    profile = write_profile(
        tmp_path,
        "name: c\nruntime: native\ntest:\n  container:\n    image: x\n  command: ['true']\n",
    )
    result = envctl("run", str(profile), "--runtime", "native")
    assert result.returncode == 2
    assert "test.container needs the docker runtime" in result.stderr


def test_timeout_stops_a_hanging_suite_and_leaves_nothing(tmp_path: Path, docker: Any) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_text("MINE=1\n")
    profile = write_profile(
        tmp_path,
        "name: slow\npostgres:\n  version: '15'\n"
        f"test:\n  timeout: 2\n"
        f"  command: [{sys.executable!r}, -c, 'import time; time.sleep(600)']\n",
    )
    result = envctl("run", str(profile))
    assert result.returncode == 3, result.stderr
    assert "ran longer than test.timeout (2s)" in result.stderr
    assert env_file.read_text() == "MINE=1\n"
    assert leftovers(docker, tmp_path) == []


CRASHING_SUITE = """
import os
from pathlib import Path

import pytest

COUNTER = Path(os.environ["COUNTER_FILE"])
RUN = int(COUNTER.read_text()) if COUNTER.exists() else 0
COUNTER.write_text(str(RUN + 1))


@pytest.mark.parametrize("where", ["/tmp", "wait", "ünï"])
def test_x(where):
    if RUN == 1:
        os._exit(3)  # the second run dies before pytest writes its JUnit file
    assert not (RUN == 2 and where != "ünï"), "fails in the third run"
"""


def test_bracketed_names_and_a_run_without_junit_results_are_reported_as_they_are(
    tmp_path: Path, docker: Any
) -> None:
    (tmp_path / "test_crash.py").write_text(CRASHING_SUITE)
    profile = write_profile(
        tmp_path,
        "name: crashing\npostgres:\n  version: '15'\n"
        "test:\n"
        f"  command: [{sys.executable!r}, -m, pytest, -q, -p, no:cacheprovider,"
        " --junitxml=results/junit.xml, test_crash.py]\n"
        "  junit: results/*.xml\n"
        f"  env:\n    COUNTER_FILE: {str(tmp_path / 'counter')!r}\n",
    )
    report_file = tmp_path / "report.json"
    result = envctl("run", str(profile), "--repeat", "3", "--report-json", str(report_file))
    assert result.returncode == 4, result.stderr  # flaky, not a crash of envctl's
    assert "Traceback" not in result.stderr + result.stdout
    out = result.stdout + result.stderr
    assert "test_x[/tmp]" in out and "test_x[wait]" in out
    assert "run 2: suite failed" in result.stderr and "no JUnit results" in result.stderr
    assert "run 2 (exit code 3) wrote no JUnit results" in out
    assert "0 passed in every run" in out and "1 not seen in every run" in out
    report = json.loads(report_file.read_text())
    outcomes = {test["id"].split("::")[-1]: test["outcomes"] for test in report["tests"]}
    assert outcomes["test_x[wait]"] == ["passed", "missing", "failed"]
    # pytest writes the non-ASCII parameter escaped; whatever its id, it passed where it ran.
    (other,) = set(outcomes) - {"test_x[/tmp]", "test_x[wait]"}
    assert outcomes[other] == ["passed", "missing", "passed"]
    assert [run["reported"] for run in report["runs"]] == [True, False, True]
    assert leftovers(docker, tmp_path) == []


def test_a_suite_in_a_container_gets_worker_databases_it_reaches_by_the_alias(
    tmp_path: Path, docker: Any, test_images: dict[int, str]
) -> None:
    check = (
        'cp "$ENVCTL_WORKERS_FILE" workers.json && cat "$ENVCTL_WORKER_SETUP" > setup.cjs && '
        'PGDATABASE=test_w2 psql -tAc "SELECT current_database()" > result.txt'
    )
    profile = write_profile(
        tmp_path,
        "name: incontainer\npostgres:\n  version: '15'\n"
        f"test:\n  container:\n    image: {test_images[15]}\n"
        f"  command: [sh, -c, {json.dumps(check)}]\n",
    )
    result = envctl("run", str(profile), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "result.txt").read_text().strip() == "test_w2"
    workers = json.loads((tmp_path / "workers.json").read_text())
    assert workers["2"]["PGHOST"] == "postgres" and workers["2"]["PGPORT"] == "5432"
    assert "@postgres:5432/test_w2?" in workers["2"]["DATABASE_URL"]
    assert "JEST_WORKER_ID" in (tmp_path / "setup.cjs").read_text()
    assert leftovers(docker, tmp_path) == []
