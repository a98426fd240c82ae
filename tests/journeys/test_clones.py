"""A database per worker from the command line: `envctl db new` clones the seeded template, each
clone is isolated from the others, `db list` names them and `db drop` removes them, and only
them: the working database and a database the user made are refused.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.journeys.conftest import Journey, env_file_values, fetch_one, no_traceback

pytestmark = pytest.mark.journey

PROFILE = """\
name: workers
postgres:
  version: "17"
  seed: [seed.sql]
env:
  file: .env.test
"""
SEED = "CREATE TABLE items (id int PRIMARY KEY);\nINSERT INTO items VALUES (1), (2);\n"
COUNT = "SELECT count(*) FROM items"


def _clone(journey: Journey, name: str) -> dict[str, str]:
    made = journey.envctl("db", "new", "envctl.yaml", name, "--format", "json", "--show-password")
    assert made.returncode == 0, made.stderr
    assert f"cloned the seeded template into {name}" in made.stderr
    variables: dict[str, str] = json.loads(made.stdout)
    return variables


def test_clones_per_worker_are_isolated_listed_and_dropped_and_nothing_else(
    journey: Journey,
) -> None:
    (journey.workdir / "envctl.yaml").write_text(PROFILE)
    (journey.workdir / "seed.sql").write_text(SEED)
    up = journey.envctl("up", "envctl.yaml")
    assert up.returncode == 0, up.stderr
    working = env_file_values(journey.workdir / ".env.test")
    try:
        one, two = _clone(journey, "worker_1"), _clone(journey, "worker_2")
        # Every variable the presets write points at the clone.
        assert one["PGDATABASE"] == "worker_1" and two["PGDATABASE"] == "worker_2"
        assert "/worker_1?" in one["DATABASE_URL"] and "/worker_2?" in two["DATABASE_URL"]
        with psycopg.connect(one["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("INSERT INTO items VALUES (3)")
        assert fetch_one(one["DATABASE_URL"], COUNT) == (3,)
        assert fetch_one(two["DATABASE_URL"], COUNT) == (2,)  # the seed, not worker_1's row
        assert fetch_one(working["DATABASE_URL"], COUNT) == (2,)

        # The password is masked unless asked for.
        masked = journey.envctl("db", "new", "envctl.yaml", "worker_3")
        assert masked.returncode == 0, masked.stderr
        assert working["PGPASSWORD"] not in masked.stdout + masked.stderr
        again = journey.envctl("db", "new", "envctl.yaml", "worker_3")
        assert again.returncode != 0 and "already exists" in again.stderr
        no_traceback(again)

        listed = journey.envctl("db", "list", "envctl.yaml", "--json")
        assert listed.returncode == 0, listed.stderr
        names = [clone["name"] for clone in json.loads(listed.stdout)]
        assert names == ["worker_1", "worker_2", "worker_3"]

        # Only clones are dropped: not the working database, not one the user made.
        with psycopg.connect(working["DATABASE_URL"], autocommit=True) as conn:
            conn.execute('CREATE DATABASE "mine"')
        for name, said in [
            ("test", "a database envctl manages, not a clone"),
            ("postgres", "a database envctl manages, not a clone"),
            ("mine", "'mine' is not a clone envctl made: it is left alone"),
            ("nosuch", "there is no database 'nosuch' on this server"),
        ]:
            refused = journey.envctl("db", "drop", "envctl.yaml", name)
            assert refused.returncode != 0 and said in refused.stderr, refused.stderr
            no_traceback(refused)
        neither = journey.envctl("db", "drop", "envctl.yaml")
        assert (
            neither.returncode == 2 and "name the clones to drop, or pass --all" in neither.stderr
        )
        assert "`envctl db list envctl.yaml` names them" in neither.stderr
        dropped = journey.envctl("db", "drop", "envctl.yaml", "worker_2")
        assert dropped.returncode == 0 and "dropped worker_2" in dropped.stderr
        every = journey.envctl("db", "drop", "envctl.yaml", "--all")
        assert every.returncode == 0, every.stderr
        assert "dropped worker_1" in every.stderr and "dropped worker_3" in every.stderr
        listed = journey.envctl("db", "list", "envctl.yaml", "--json")
        assert json.loads(listed.stdout) == []
        assert fetch_one(
            working["DATABASE_URL"],
            "SELECT count(*) FROM pg_database WHERE datname IN ('mine', 'test')",
        ) == (2,)
        # A name dropped can be cloned again: the next run's worker starts from the seed.
        assert fetch_one(_clone(journey, "worker_1")["DATABASE_URL"], COUNT) == (2,)
    finally:
        down = journey.envctl("down", "envctl.yaml")
        assert down.returncode == 0, down.stderr
    gone = journey.envctl("db", "list", "envctl.yaml")
    assert gone.returncode != 0 and "envctl up" in gone.stderr, gone.stderr
    no_traceback(gone)


SUITE = """\
import json, os, psycopg
workers = json.load(open(os.environ["ENVCTL_WORKERS_FILE"]))
assert sorted(workers) == ["1", "2", "3"], workers
for worker, variables in workers.items():
    with psycopg.connect(variables["DATABASE_URL"], autocommit=True) as conn:
        (count,) = conn.execute("SELECT count(*) FROM items").fetchone()
        assert count == 2, (worker, count)  # the seed: a repeat starts from it again
        conn.execute("INSERT INTO items VALUES (10 + %s)", [int(worker)])
print("workers ok")
"""


def test_run_with_workers_gives_every_repeat_fresh_worker_databases(journey: Journey) -> None:
    (journey.workdir / "envctl.yaml").write_text(PROFILE)
    (journey.workdir / "seed.sql").write_text(SEED)
    (journey.workdir / "suite.py").write_text(SUITE)
    run = journey.envctl(
        "run", "envctl.yaml", "--workers", "3", "--repeat", "2", "--", "python", "suite.py"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (run.stdout + run.stderr).count("workers ok") == 2
    assert "cloned 3 worker databases: test_w1 ... test_w3" in run.stderr
    assert "run 2: suite passed" in run.stderr
