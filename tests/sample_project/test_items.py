"""A user's test suite: each test gets a fresh copy of the seeded database and changes it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest

from provisioner import ClonedDatabase, RunningEnvironment


@pytest.mark.parametrize("n", range(50))
def test_each_test_starts_from_the_seeded_rows(envctl_db: ClonedDatabase, n: int) -> None:
    with psycopg.connect(envctl_db.url) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM items ORDER BY id")]
        assert names == ["apple", "pear", "plum"]
        conn.execute("INSERT INTO items (name) VALUES (%s), (%s)", [f"new-{n}", "extra"])
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (5,)


def test_the_clone_has_its_own_variables(envctl_db: ClonedDatabase) -> None:
    assert envctl_db.env["PGDATABASE"] == envctl_db.name
    assert envctl_db.env["DATABASE_URL"] == envctl_db.url
    with psycopg.connect(envctl_db.env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (envctl_db.name,)


def test_the_session_variables_are_in_the_environment(envctl_env: RunningEnvironment) -> None:
    assert os.environ["DATABASE_URL"] == envctl_env.url
    assert os.environ["PGDATABASE"] == "shop_test"


@pytest.mark.skipif("SAMPLE_BLOCK_UNTIL" not in os.environ, reason="only to test interruption")
def test_blocks_until_interrupted(envctl_db: ClonedDatabase) -> None:
    # Tells the outer test that the environment is up and a clone exists (and which process
    # holds it), then waits to be interrupted: the outer test signals as soon as it sees the file.
    Path(os.environ["SAMPLE_BLOCK_UNTIL"]).write_text(f"{os.getpid()} {envctl_db.name}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.1)
    pytest.fail("nobody interrupted the run")
