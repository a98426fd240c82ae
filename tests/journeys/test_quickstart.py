"""Journeys of the README's first commands: the quickstart, and a database kept up on a fixed port.

The profile is the shipped profiles/quickstart.yaml, copied into a project as a user copies it;
the commands are the README's, typed in the project's root, on the default runtime (Docker).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.journeys.conftest import Journey, env_file_values, fetch_one, no_traceback

pytestmark = pytest.mark.journey

REPO = Path(__file__).parents[2]
FIXED_PORT = 55441

# The user's integration test: it reaches the database through DATABASE_URL alone.
INTEGRATION_TEST = """
import os

import psycopg


def test_the_database_is_reachable_and_writable():
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        conn.execute("CREATE TABLE items (name text)")
        conn.execute("INSERT INTO items VALUES ('apple'), ('fig')")
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (2,)
        assert conn.info.server_version // 10000 == 18
        assert conn.info.dbname == "app_test"
"""


def _project(journey: Journey) -> Path:
    """A project with profiles/quickstart.yaml and tests/integration, as the README has them."""
    (journey.workdir / "profiles").mkdir()
    shutil.copyfile(
        REPO / "profiles" / "quickstart.yaml", journey.workdir / "profiles" / "quickstart.yaml"
    )
    tests = journey.workdir / "tests" / "integration"
    tests.mkdir(parents=True)
    (tests / "test_db.py").write_text(INTEGRATION_TEST)
    return journey.workdir / "profiles" / "quickstart.yaml"


def test_the_readme_quickstart_runs_twice_in_a_row(journey: Journey) -> None:
    _project(journey)
    for attempt in (1, 2):
        result = journey.envctl(
            "run", "profiles/quickstart.yaml", "--", "pytest", "tests/integration"
        )
        assert result.returncode == 0, (attempt, result.stdout, result.stderr)
        no_traceback(result)
        assert "runtime: docker, because the engine answers and has postgres:18" in result.stderr
        assert "starting Postgres 18 (docker: postgres:18)" in result.stderr
        assert "running: pytest tests/integration" in result.stderr
        assert "run 1: suite passed" in result.stderr
        assert "1 passed" in result.stdout  # the user's test really ran, against the database
        assert not (journey.workdir / "profiles" / ".env.test").exists()


def test_the_quickstart_profile_default_command_runs(journey: Journey) -> None:
    _project(journey)
    result = journey.envctl("run", "profiles/quickstart.yaml")
    assert result.returncode == 0, result.stderr
    assert "DATABASE_URL is set" in result.stdout


def _fixed_port_profile(journey: Journey) -> Path:
    profile = _project(journey)
    text = profile.read_text()
    assert "port: auto" in text
    profile.write_text(text.replace("port: auto", f"port: {FIXED_PORT}"))
    return profile


def test_up_down_up_down_on_a_fixed_port_restores_the_env_file(journey: Journey) -> None:
    _fixed_port_profile(journey)
    env_file = journey.workdir / "profiles" / ".env.test"
    # The user's own file: a comment, their variables, CRLF and no final newline.
    original = b"# mine\r\nAPP_SECRET=s3cret\r\nPGPORT=5432\r\nDEBUG=1"
    env_file.write_bytes(original)
    env_file.chmod(0o640)
    for attempt in (1, 2):
        up = journey.envctl("up", "profiles/quickstart.yaml")
        assert up.returncode == 0, (attempt, up.stderr)
        no_traceback(up)
        assert f"ready on 127.0.0.1:{FIXED_PORT}" in up.stderr
        assert f"wrote {env_file}" in up.stderr
        assert "remove it with: envctl down profiles/quickstart.yaml" in up.stderr
        values = env_file_values(env_file)
        assert values["APP_SECRET"] == "s3cret" and values["DEBUG"] == "1"
        assert values["PGPORT"] == str(FIXED_PORT)
        assert f"@127.0.0.1:{FIXED_PORT}/app_test" in values["DATABASE_URL"]
        assert fetch_one(values["DATABASE_URL"], "SELECT current_database(), 40 + 2") == (
            "app_test",
            42,
        )
        down = journey.envctl("down", "profiles/quickstart.yaml")
        assert down.returncode == 0, (attempt, down.stderr)
        assert "removed container" in down.stderr
        assert f"restored {env_file}" in down.stderr
        assert env_file.read_bytes() == original
        assert env_file.stat().st_mode & 0o777 == 0o640
    again = journey.envctl("down", "profiles/quickstart.yaml")
    assert again.returncode == 0, again.stderr
    assert "nothing to remove" in again.stderr
