"""The environment a journey's envctl sees: a user's, plus what CI needs to measure it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.journeys.conftest import ENVCTL, user_environment


def test_coverage_variables_reach_the_envctl_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI measures every envctl process through them (.ci/run); dropping them loses cli.py.
    monkeypatch.setenv("COVERAGE_PROCESS_START", "/repo/pyproject.toml")
    monkeypatch.setenv("COVERAGE_FILE", "/repo/.coverage")
    monkeypatch.setenv("ENVCTL_RUNTIME", "docker")
    env = user_environment(tmp_path / "home", tmp_path)
    assert env["COVERAGE_PROCESS_START"] == "/repo/pyproject.toml"
    assert env["COVERAGE_FILE"] == "/repo/.coverage"
    assert not [name for name in env if name.startswith("ENVCTL_")]
    assert env["HOME"] == str(tmp_path / "home")
    assert env["PATH"].split(":")[0] == str(ENVCTL.parent)
