"""Journeys of a working day with a database kept up: look at it (`status`, `env`), change data
and `reset` it, `dump` it and `repro` the dump, and a `dump` to a folder that does not exist.

The profile is the user's own, seeded from a SQL file, on a fixed port and the default runtime.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.journeys.conftest import Journey, env_file_values, fetch_one, no_traceback

pytestmark = pytest.mark.journey

PORT = 55443
PROFILE = f"""\
name: shop
postgres:
  version: "17"
  port: {PORT}
  database: shop_test
  seed: [seed.sql]
env:
  file: .env.test
"""
SEED = """
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items VALUES (1, 'apple'), (2, 'banana'), (3, 'cherry');
"""
ITEMS = "SELECT count(*), string_agg(name, ',' ORDER BY id) FROM items"
SEEDED = (3, "apple,banana,cherry")


def _up(journey: Journey) -> dict[str, str]:
    (journey.workdir / "envctl.yaml").write_text(PROFILE)
    (journey.workdir / "seed.sql").write_text(SEED)
    up = journey.envctl("up", "envctl.yaml")
    assert up.returncode == 0, up.stderr
    assert f"ready on 127.0.0.1:{PORT}" in up.stderr
    return env_file_values(journey.workdir / ".env.test")


def _down(journey: Journey, target: str = "envctl.yaml") -> None:
    down = journey.envctl("down", target)
    assert down.returncode == 0, down.stderr
    assert "removed container" in down.stderr


def test_status_and_env_show_the_running_environment(journey: Journey) -> None:
    values = _up(journey)
    password = values["PGPASSWORD"]
    status = journey.envctl("status")
    assert status.returncode == 0, status.stderr
    assert "shop-" in status.stderr and "running" in status.stderr and str(PORT) in status.stderr
    assert "orphan" not in status.stderr
    listed = json.loads(journey.envctl("status", "--json").stdout)
    assert [
        (row["name"], row["mode"], row["status"], row["port"], row["orphan"]) for row in listed
    ] == [("shop", "up", "running", PORT, False)]
    assert listed[0]["profile"] == str(journey.workdir / "envctl.yaml")

    shown = journey.envctl("env", "envctl.yaml")
    assert shown.returncode == 0, shown.stderr
    assert password not in shown.stdout + shown.stderr
    masked = {key: value.replace(password, "****") for key, value in values.items()}
    printed = json.loads(journey.envctl("env", "envctl.yaml", "--format", "json").stdout)
    assert printed == masked
    assert "ssl: sslmode disable" in shown.stderr
    revealed = journey.envctl("env", "envctl.yaml", "--format", "json", "--show-password")
    assert json.loads(revealed.stdout) == values
    # The README: `envctl env ... --format shell` can be piped or eval'ed.
    script = 'eval "$(envctl env envctl.yaml --format shell --show-password)"; echo "$DATABASE_URL"'
    evaluated = subprocess.run(
        ["sh", "-c", script], cwd=journey.workdir, env=journey.env, capture_output=True, text=True
    )
    assert evaluated.stdout.strip() == values["DATABASE_URL"], evaluated.stderr
    _down(journey)
    assert journey.envctl("status").stderr.startswith("no environments\n")


def test_reset_puts_the_seeded_data_back(journey: Journey) -> None:
    url = _up(journey)["DATABASE_URL"]
    for _ in (1, 2):  # a user resets again and again between experiments
        fetch_one(url, "DELETE FROM items WHERE id = 1 RETURNING id")
        fetch_one(url, "INSERT INTO items VALUES (9, 'zucchini') RETURNING id")
        assert fetch_one(url, ITEMS) == (3, "banana,cherry,zucchini")
        reset = journey.envctl("reset", "envctl.yaml")
        assert reset.returncode == 0, reset.stderr
        assert "reset envctl.yaml to its seeded state in" in reset.stderr
        assert fetch_one(url, ITEMS) == SEEDED
    _down(journey)


def test_a_dump_restores_with_repro(journey: Journey) -> None:
    url = _up(journey)["DATABASE_URL"]
    fetch_one(url, "INSERT INTO items VALUES (4, 'damson') RETURNING id")
    dumped = journey.envctl("dump", "envctl.yaml", "-o", "x.dump")
    assert dumped.returncode == 0, dumped.stderr
    assert "wrote x.dump (" in dumped.stderr and "custom format" in dumped.stderr
    backup = journey.workdir / "x.dump"
    assert backup.stat().st_mode & 0o777 == 0o600
    _down(journey)

    check = journey.workdir / "check.py"
    check.write_text(
        "import os, sys, psycopg\n"
        "with psycopg.connect(os.environ['DATABASE_URL']) as conn:\n"
        f"    print(conn.execute({ITEMS!r}).fetchone())\n"
    )
    repro = journey.envctl("repro", "x.dump", "--", "python", "check.py")
    assert repro.returncode == 0, repro.stderr
    no_traceback(repro)
    assert "starting Postgres 17 (docker: postgres:17)" in repro.stderr
    assert "it stays up; remove it with: envctl down x.dump" in repro.stderr
    assert repro.stdout.strip().splitlines()[-1] == "(4, 'apple,banana,cherry,damson')"
    _down(journey, "x.dump")


def test_a_dump_into_a_missing_folder_is_refused_before_pg_dump(journey: Journey) -> None:
    _up(journey)
    before = sorted(path.name for path in journey.workdir.iterdir())
    refused = journey.envctl("dump", "envctl.yaml", "-o", "/no/such/dir/y.dump")
    assert refused.returncode == 2, refused.stderr
    no_traceback(refused)
    assert "error: cannot write /no/such/dir/y.dump: the folder /no/such/dir does not exist" in (
        refused.stderr
    )
    assert "hint: create it first" in refused.stderr
    assert not Path("/no/such/dir").exists()
    assert sorted(path.name for path in journey.workdir.iterdir()) == before
    (journey.workdir / "backups").mkdir()
    into_folder = journey.envctl("dump", "envctl.yaml", "-o", "backups")
    assert into_folder.returncode == 2, into_folder.stderr
    assert "error: backups is a folder, not a backup file" in into_folder.stderr
    assert list((journey.workdir / "backups").iterdir()) == []
    _down(journey)
