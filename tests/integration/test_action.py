"""The GitHub Action itself: main.js installs envctl from this checkout and runs it; post.js
tears down. Also proves that a plain `pip install .` (the README's install command) works."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, leftovers, unavailable, write_profile
from tests.integration.test_github import read_heredoc_file

pytestmark = pytest.mark.docker


def test_up_mode_then_the_post_step_tears_down(tmp_path: Path, docker: Any) -> None:
    if shutil.which("node") is None:
        unavailable("node is needed to run the action")
    files = {
        name: tmp_path / name.lower() for name in ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_STATE")
    }
    for path in files.values():
        path.write_text("")
    profile = write_profile(tmp_path, "name: action\npostgres:\n  version: '15'\n")
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        **{name: str(path) for name, path in files.items()},
        "RUNNER_TEMP": str(tmp_path / "runner"),
        "INPUT_PROFILE": str(profile),
        "INPUT_MODE": "up",
        "INPUT_VERSION": "15",
    }
    (tmp_path / "runner").mkdir()
    main = subprocess.run(
        ["node", str(ROOT / "action" / "main.js")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,  # under pytest's own 300 s, so that a hang reports the action's output
    )
    assert main.returncode == 0, main.stdout + main.stderr
    assert "::group::install envctl" in main.stdout
    outputs = read_heredoc_file(files["GITHUB_OUTPUT"])
    with psycopg.connect(outputs["database-url"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    exported = read_heredoc_file(files["GITHUB_ENV"])
    assert exported["PGPORT"] == outputs["port"]

    state = dict(line.split("=", 1) for line in files["GITHUB_STATE"].read_text().splitlines())
    post = subprocess.run(
        ["node", str(ROOT / "action" / "post.js")],
        env={**env, **{f"STATE_{key}": value for key, value in state.items()}},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert post.returncode == 0, post.stdout + post.stderr
    assert leftovers(docker, tmp_path) == []
    assert not (tmp_path / ".env.test").exists()


def test_run_mode_passes_repeat_and_workers_and_leaves_nothing(tmp_path: Path, docker: Any) -> None:
    if shutil.which("node") is None:
        unavailable("node is needed to run the action")
    profile = write_profile(tmp_path, "name: actionrun\npostgres:\n  version: '15'\n")
    output = tmp_path / "github_output"
    output.write_text("")
    check = (
        'test "$ENVCTL_WORKERS" = 2 && grep -q test_w2 "$ENVCTL_WORKERS_FILE" && echo ran >> runs'
    )
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "RUNNER_TEMP": str(tmp_path / "runner"),
        "INPUT_PROFILE": str(profile),
        "INPUT_MODE": "run",
        "INPUT_VERSION": "15",
        "INPUT_REPEAT": "2",
        "INPUT_WORKERS": "2",
        "INPUT_COMMAND": f"cd {tmp_path} && {check}",
    }
    (tmp_path / "runner").mkdir()
    main = subprocess.run(
        ["node", str(ROOT / "action" / "main.js")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert main.returncode == 0, main.stdout + main.stderr
    assert (tmp_path / "runs").read_text() == "ran\nran\n"
    assert read_heredoc_file(output)["result"] == "passed"
    assert leftovers(docker, tmp_path) == []
