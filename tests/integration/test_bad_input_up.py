"""Bad input through `up` against a real engine: refused before anything starts, nothing left.

The unit corpus (tests/unit/test_bad_input_corpus.py) runs every case with an engine that never
answers; here a few go through `up` where Docker works, and a profile that does start shows
that `down` removes the folders `up` made for its env file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import envctl, leftovers
from tests.unit.test_bad_input_corpus import CASES, assert_refused, make_project, snapshot

pytestmark = pytest.mark.docker

THROUGH_UP = (
    "template-format-spec",
    "rendered-over-128k",
    "setting-over-cap",
    "seed-symlink-loop",
    "port-true",
    "database-template0",
    "setting-unix_socket_directories",
)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in THROUGH_UP], ids=lambda c: c.id)
def test_up_with_a_working_engine_refuses_and_leaves_nothing(
    case: Any, tmp_path: Path, docker: Any, private_state: Path
) -> None:
    project = tmp_path / "project"
    make_project(project, case)
    before = snapshot(project)
    result = envctl("up", "p.yaml", cwd=project, env=os.environ.copy())
    assert_refused(result, case)
    assert snapshot(project) == before
    assert not (private_state / "envs").exists() or not any((private_state / "envs").iterdir())
    assert leftovers(docker, private_state) == []


def test_down_removes_the_folders_up_made_for_the_env_file(
    tmp_path: Path, docker: Any, private_state: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "p.yaml").write_text(
        "name: made\npostgres:\n  version: '15'\n  ssl: require\n"
        "env:\n  file: out/deeper/.env.test\n"
    )
    up = envctl("up", "p.yaml", cwd=project, env=os.environ.copy())
    assert up.returncode == 0, up.stderr
    assert (project / "out" / "deeper" / ".env.test").is_file()
    down = envctl("down", "p.yaml", cwd=project, env=os.environ.copy())
    assert down.returncode == 0, down.stderr
    assert "removed folder" in down.stderr
    assert sorted(p.name for p in project.iterdir()) == ["p.yaml"]


def test_down_keeps_a_made_folder_that_holds_something_else(
    tmp_path: Path, docker: Any, private_state: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "p.yaml").write_text(
        "name: kept\npostgres:\n  version: '15'\nenv:\n  file: out/.env.test\n"
    )
    assert envctl("up", "p.yaml", cwd=project, env=os.environ.copy()).returncode == 0
    (project / "out" / "mine.txt").write_text("a user's file\n")
    down = envctl("down", "p.yaml", cwd=project, env=os.environ.copy())
    assert down.returncode == 0, down.stderr
    assert sorted(p.name for p in (project / "out").iterdir()) == ["mine.txt"]
