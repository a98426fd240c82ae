"""Journeys of the shipped profiles/medusa.yaml, copied into a Medusa backend's folder as its
comment says, and started on its fixed port 55432.

The profile asks for Postgres 16 (what Medusa v2 documents); this machine has 15, 17 and 18
only (no image postgres:16, no native 16), so after seeing the refusal a user overrides the
version with `--postgres-version 17`, as the profile's comment tells them to.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.journeys.conftest import Journey, env_file_values, fetch_one, no_traceback

pytestmark = pytest.mark.journey

REPO = Path(__file__).parents[2]
PORT = 55432
MEDUSA_VARIABLES = ("DB_HOST", "DB_PORT", "DB_USERNAME", "DB_PASSWORD", "DATABASE_URL", "PGSSLMODE")


def _backend(journey: Journey) -> Path:
    """apps/server/ of a Medusa monorepo, with the shipped profile copied in as envctl.yaml."""
    server = journey.workdir / "apps" / "server"
    server.mkdir(parents=True)
    (server / "package.json").write_text('{"name": "server"}\n')
    shutil.copyfile(REPO / "profiles" / "medusa.yaml", server / "envctl.yaml")
    return server


def test_the_medusa_profile_asks_for_16_and_says_what_is_here(journey: Journey) -> None:
    server = _backend(journey)
    refused = journey.envctl("up", "envctl.yaml", cwd=server)
    assert refused.returncode == 3, refused.stderr
    no_traceback(refused)
    assert "error: PostgreSQL 16 cannot run here" in refused.stderr
    assert "17 (image postgres:17)" in refused.stderr
    assert not (server / ".env.test").exists()


def test_the_medusa_profile_up_down_twice_on_55432(journey: Journey) -> None:
    server = _backend(journey)
    env_file = server / ".env.test"
    for attempt in (1, 2):
        up = journey.envctl("up", "envctl.yaml", "--postgres-version", "17", cwd=server)
        assert up.returncode == 0, (attempt, up.stderr)
        no_traceback(up)
        assert "starting Postgres 17 (docker: postgres:17)" in up.stderr
        assert f"ready on 127.0.0.1:{PORT}" in up.stderr
        assert f"wrote {env_file}" in up.stderr
        values = env_file_values(env_file)
        assert set(MEDUSA_VARIABLES) <= set(values), values.keys()
        assert values["DB_HOST"] == "127.0.0.1"
        assert values["DB_PORT"] == str(PORT)
        assert values["DB_USERNAME"] == "postgres"
        assert values["PGSSLMODE"] == "disable"
        assert values["DB_PASSWORD"] and values["DB_PASSWORD"] in values["DATABASE_URL"]
        assert f"@127.0.0.1:{PORT}/medusa_test?sslmode=disable" in values["DATABASE_URL"]
        database, major, connections = fetch_one(
            values["DATABASE_URL"],
            "SELECT current_database(), current_setting('server_version_num')::int / 10000,"
            " current_setting('max_connections')",
        )
        assert (database, major, connections) == ("medusa_test", 17, "200")

        # With the environment up, doctor checks what runs, not the profile's absent 16.
        doctor = journey.envctl("doctor", "envctl.yaml", cwd=server)
        assert doctor.returncode == 0, doctor.stderr
        assert "all checks passed" in doctor.stderr
        assert "connect: DB_* as Medusa's test runner reads them: connected" in doctor.stderr

        down = journey.envctl("down", "envctl.yaml", cwd=server)
        assert down.returncode == 0, (attempt, down.stderr)
        assert "removed container" in down.stderr
        assert not env_file.exists()  # envctl made it, envctl removed it


def test_the_medusa_profile_runs_a_suite_in_the_backend_folder(journey: Journey) -> None:
    server = _backend(journey)
    script = server / "check.py"
    script.write_text(
        "import json, os, sys\n"
        "names = sys.argv[1:]\n"
        "print(json.dumps({'cwd': os.getcwd(), **{k: os.environ.get(k) for k in names}}))\n"
    )
    result = journey.envctl(
        "run",
        "envctl.yaml",
        "--postgres-version",
        "17",
        "--",
        "python",
        "check.py",
        *MEDUSA_VARIABLES,
        cwd=server,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["cwd"] == str(server)
    assert seen["DB_PORT"] == str(PORT)
    assert seen["PGSSLMODE"] == "disable"
    assert not (server / ".env.test").exists()


# Medusa's runner in miniature: per test file it creates a database with no TEMPLATE, from the
# DB_* variables it reads, and migrates it with the app's migrator, which applies what the
# database's migration table does not list yet.
MIGRATOR = """
import os, sys
from pathlib import Path
import psycopg

def migrate(url):
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS migrations (name text PRIMARY KEY)")
        done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
        todo = [p for p in sorted(Path("migrations").glob("*.sql")) if p.name not in done]
        for path in todo:
            conn.execute(path.read_text())
            conn.execute("INSERT INTO migrations VALUES (%s)", [path.name])
    return len(todo)

if __name__ == "__main__":
    print("applied", migrate(os.environ["DATABASE_URL"]))
"""
RUNNER = """
import os
import psycopg
from migrate import migrate

base = "postgresql://{DB_USERNAME}:{DB_PASSWORD}@{DB_HOST}:{DB_PORT}/".format(**os.environ)
for number in range(1, 4):
    name = f"medusa-integration-{number}"
    with psycopg.connect(base + "postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    applied = migrate(base + name)
    with psycopg.connect(base + name) as conn:
        conn.execute("INSERT INTO products (title) VALUES ('shirt')")
        count = conn.execute("SELECT count(*) FROM products").fetchone()[0]
    with psycopg.connect(base + "postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    print(f"file {number}: applied {applied}, products {count}")
"""


def test_a_runner_that_migrates_a_database_per_file_finds_it_migrated_with_template1(
    journey: Journey,
) -> None:
    server = _backend(journey)
    (server / "migrations").mkdir()
    (server / "migrations" / "001_products.sql").write_text(
        "CREATE TABLE products (id serial PRIMARY KEY, title text NOT NULL);\n"
    )
    (server / "migrations" / "002_variants.sql").write_text(
        "CREATE TABLE variants (id serial PRIMARY KEY, product int REFERENCES products);\n"
    )
    (server / "migrate.py").write_text(MIGRATOR)
    (server / "runner.py").write_text(RUNNER)
    (server / "envctl.fast.yaml").write_text(
        "extends: envctl.yaml\n"
        "postgres:\n"
        f"  migrate: {{command: [{sys.executable!r}, migrate.py], inputs: [migrations/*.sql]}}\n"
        "  template1: true\n"
    )
    command = ("--postgres-version", "17", "--", sys.executable, "runner.py")
    # The shipped profile: every file's database starts empty and is migrated from scratch.
    plain = journey.envctl("run", "envctl.yaml", *command, cwd=server)
    assert plain.returncode == 0, plain.stderr
    assert "file 3: applied 2, products 1" in plain.stdout
    # Twice with the migrations in template1, on the same fixed port: every file finds them.
    for _ in range(2):
        fast = journey.envctl("run", "envctl.fast.yaml", *command, cwd=server)
        assert fast.returncode == 0, fast.stderr
        for number in (1, 2, 3):
            assert f"file {number}: applied 0, products 1" in fast.stdout, fast.stdout
        no_traceback(fast)
    assert not (server / ".env.test").exists()
