"""envctl touches only what is its own: ids it made, its own state folder's environments."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from provisioner.errors import UsageError
from provisioner.state import checked_env_id, env_state_dir, forget, is_env_id
from tests.conftest import envctl, write_profile

PROFILE = "name: safety\npostgres:\n  version: '15'\nenv:\n  file: .env.test\n"


@pytest.mark.parametrize(
    "text",
    ["../../victim", "..", ".", "/tmp/x-0123abcd", "a/b-0123abcd", "safety-0123ABCD", "", "x"],
)
def test_a_path_is_never_taken_for_an_environment_id(text: str) -> None:
    assert not is_env_id(text)
    with pytest.raises(UsageError, match="not an environment id"):
        checked_env_id(text)
    with pytest.raises(UsageError):
        forget(text)


def test_ids_envctl_makes_are_ids(tmp_path: Path) -> None:
    from provisioner.profile import load_profile

    profile = load_profile(write_profile(tmp_path, PROFILE))
    assert is_env_id(profile.env_id)


def test_forget_removes_a_symlink_in_its_place_not_what_it_points_to(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    (victim / "important").mkdir(parents=True)
    folder = env_state_dir("safety-0123abcd")
    folder.rmdir()
    folder.symlink_to(victim)
    forget("safety-0123abcd")
    assert (victim / "important").is_dir()
    assert not folder.exists()


@pytest.mark.docker
def test_down_of_a_path_like_id_removes_nothing(tmp_path: Path, docker: Any) -> None:
    # The state folder's envs/ is tmp/envctl-state/envs: "../../victim" from there is tmp/victim,
    # while from the working folder it names nothing, so it is taken as an id.
    victim = tmp_path / "victim"
    (victim / "important").mkdir(parents=True)
    (victim / "important" / "data").write_text("precious")
    cwd = tmp_path / "w" / "a" / "b"
    cwd.mkdir(parents=True)

    result = envctl("down", "../../victim", cwd=cwd)

    assert result.returncode == 2, result.stderr
    assert "not an environment id" in result.stderr
    assert "Traceback" not in result.stderr
    assert (victim / "important" / "data").read_text() == "precious"


@pytest.mark.docker
def test_gc_and_status_leave_another_state_folders_live_environment_alone(
    tmp_path: Path, docker: Any, private_state: Path
) -> None:
    # state-b's path starts with state's: a string prefix test took it for ours.
    other = Path(f"{private_state}-b")
    profile = write_profile(tmp_path, PROFILE)
    theirs = {**os.environ, "ENVCTL_STATE_DIR": str(other)}
    started = envctl("up", str(profile), env=theirs)
    assert started.returncode == 0, started.stderr
    try:
        collected = envctl("gc")
        assert collected.returncode == 0, collected.stderr
        listed = envctl("status", "--json")
        assert listed.returncode == 0, listed.stderr
        theirs_status = envctl("status", "--json", env=theirs)
        assert json.loads(theirs_status.stdout)[0]["status"] == "running"
        assert json.loads(listed.stdout) == []
        assert "of other state folders not shown" in envctl("status").stderr
    finally:
        removed = envctl("down", str(profile), env=theirs)
    assert removed.returncode == 0, removed.stderr
    assert "removed container" in removed.stderr, removed.stderr


@pytest.mark.docker
def test_run_twice_in_a_row_on_a_fixed_port(tmp_path: Path, docker: Any) -> None:
    from provisioner.ports import free_port

    port = free_port("127.0.0.1")
    profile = write_profile(
        tmp_path, PROFILE.replace("  version: '15'\n", f"  version: '15'\n  port: {port}\n")
    )
    script = "import psycopg, os; psycopg.connect(os.environ['DATABASE_URL']).close()"
    for attempt in range(2):
        result = envctl("run", str(profile), "--", sys.executable, "-c", script)
        assert result.returncode == 0, f"run {attempt + 1}: {result.stderr}"


@pytest.mark.docker
def test_a_second_profile_on_the_same_env_file_is_refused(tmp_path: Path, docker: Any) -> None:
    original = b"# mine\nAPP_MODE=test\nDATABASE_URL=postgres://keep@db/mine\n"
    (tmp_path / ".env.test").write_bytes(original)
    write_profile(tmp_path, PROFILE.replace("name: safety", "name: first"), "a.yaml")
    write_profile(tmp_path, PROFILE.replace("name: safety", "name: second"), "b.yaml")

    assert envctl("up", "a.yaml", cwd=tmp_path).returncode == 0
    try:
        held = (tmp_path / ".env.test").read_bytes()
        second = envctl("up", "b.yaml", cwd=tmp_path)
        assert second.returncode == 3, second.stderr
        assert "already written by the environment of" in second.stderr
        assert "a.yaml" in second.stderr and "envctl down" in second.stderr
        assert (tmp_path / ".env.test").read_bytes() == held
        # The refused start left nothing: no record, no container of its own.
        status = envctl("status", "--json", cwd=tmp_path)
        names = [env["name"] for env in json.loads(status.stdout)]
        assert names == ["first"], status.stdout
    finally:
        down = envctl("down", "a.yaml", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert (tmp_path / ".env.test").read_bytes() == original


@pytest.mark.docker
def test_down_keeps_the_lines_a_user_added_while_up(tmp_path: Path, docker: Any) -> None:
    original = b"APP_MODE=test\nDATABASE_URL=postgres://keep@db/mine\n"
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(original)
    write_profile(tmp_path, PROFILE)
    assert envctl("up", "profile.yaml", cwd=tmp_path).returncode == 0
    with env_file.open("a") as handle:
        handle.write("FEATURE_FLAG=on\n")
    down = envctl("down", "profile.yaml", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert "keeping the 1 line(s) you added or changed" in down.stderr
    assert env_file.read_bytes() == original + b"FEATURE_FLAG=on\n"
