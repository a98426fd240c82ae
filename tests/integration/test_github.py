"""GitHub Actions integration with real `up`/`run`: env, outputs, masks, annotations, summary."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import envctl, write_profile


def github_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    files = {
        name: tmp_path / f"{name.lower()}.txt"
        for name in ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")
    }
    for name, path in files.items():
        path.write_text("")
        monkeypatch.setenv(name, str(path))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    return files


def read_heredoc_file(path: Path) -> dict[str, str]:
    """Parse the NAME<<DELIMITER form GitHub's runner reads."""
    values: dict[str, str] = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        name, delimiter = lines[i].split("<<", 1)
        end = lines.index(delimiter, i + 1)
        values[name] = "\n".join(lines[i + 1 : end])
        i = end + 1
    return values


def test_up_exports_variables_and_outputs_and_masks_first(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = github_files(tmp_path, monkeypatch)
    profile = write_profile(tmp_path, "name: gh\npostgres:\n  version: '15'\n")
    result = envctl("up", str(profile))
    try:
        assert result.returncode == 0, result.stderr
        exported = read_heredoc_file(files["GITHUB_ENV"])
        password = exported["PGPASSWORD"]
        outputs = read_heredoc_file(files["GITHUB_OUTPUT"])
        assert outputs["database-url"] == exported["DATABASE_URL"]
        assert outputs["port"] == exported["PGPORT"]
        assert outputs["env-file"] == str(tmp_path / ".env.test")
        # The mask is the first thing printed, and the secret itself is never printed.
        assert result.stdout.splitlines()[0] == f"::add-mask::{password}"
        assert password not in result.stderr
        assert result.stdout.count(password) == 1
    finally:
        envctl("down", str(profile))


def test_run_annotates_failures_and_writes_the_summary(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = github_files(tmp_path, monkeypatch)
    (tmp_path / "test_suite.py").write_text(
        "def test_good():\n    pass\n\n\ndef test_bad():\n    assert 1 + 1 == 3, 'math is broken'\n"
    )
    profile = write_profile(
        tmp_path,
        "name: ghrun\npostgres:\n  version: '15'\n"
        f"test:\n  command: [{sys.executable!r}, -m, pytest, -q, -p, no:cacheprovider,"
        " -o, junit_family=xunit1, --junitxml=junit.xml, test_suite.py]\n  junit: junit.xml\n",
    )
    result = envctl("run", str(profile))
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1
    assert re.match(r"::error file=test_suite\.py,line=\d+,title=failed%3A .*test_bad::", errors[0])
    assert "math is broken" in errors[0]
    assert "::group::database server log" in result.stdout
    outputs = read_heredoc_file(files["GITHUB_OUTPUT"])
    assert outputs["result"] == "failed"
    assert "**failed**" in files["GITHUB_STEP_SUMMARY"].read_text()


def test_matrix_fans_profiles_and_versions_out(tmp_path: Path) -> None:
    one = write_profile(tmp_path, "name: one\n", name="one.yaml")
    two = write_profile(tmp_path, "name: two\npostgres:\n  version: '17'\n", name="two.yaml")
    result = envctl("matrix", str(one), str(two), "--versions", "15,16")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(e["profile"], e["postgres-version"]) for e in data["include"]] == [
        (str(one), "15"),
        (str(one), "16"),
        (str(two), "15"),
        (str(two), "16"),
    ]
    assert data["include"][0]["name"] == "one (Postgres 15)"
    defaults = json.loads(envctl("matrix", str(two)).stdout)
    assert defaults["include"] == [
        {"name": "two (Postgres 17)", "profile": str(two), "postgres-version": "17"}
    ]
    bad = envctl("matrix", str(one), "--versions", "15,banana")
    assert bad.returncode == 2 and "banana" in bad.stderr
