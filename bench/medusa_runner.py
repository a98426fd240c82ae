"""A Medusa-style integration runner: a fresh, migrated database per test file.

`python bench/medusa_runner.py MIGRATIONS [--files F]` does, for each of F test files in turn,
what @medusajs/test-utils does: connect to the maintenance database `postgres` with DB_HOST,
DB_PORT, DB_USERNAME and DB_PASSWORD (what envctl's `medusa` preset writes), `CREATE DATABASE`
with a random name and no TEMPLATE clause (so it copies template1), migrate it (the migrator,
in this process), run a tiny test on two of its tables, and `DROP DATABASE ... WITH (FORCE)`.
It exits 1 if any step fails. Its last line, `medusa-runner: {json}`, gives the migrations
each file applied and the seconds of each phase of each file, for the benchmark to read.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.migrator import apply_migrations

SUMMARY = "medusa-runner: "
PHASES = ("CREATE DATABASE", "migrate + test", "DROP DATABASE")


def connect(database: str) -> Any:
    """An autocommit connection to `database` with the DB_* variables Medusa's runner reads."""
    import psycopg

    return psycopg.connect(
        host=os.environ.get("DB_HOST", "localhost"),
        port=os.environ.get("DB_PORT", "5432"),
        user=os.environ.get("DB_USERNAME", "postgres"),
        password=os.environ.get("DB_PASSWORD", ""),
        dbname=database,
        autocommit=True,
    )


def tiny_test(conn: Any) -> None:
    """A few inserts and selects across two migrated tables (a parent and its child)."""
    parent = conn.execute("INSERT INTO t0001 (handle) VALUES ('p') RETURNING id").fetchone()[0]
    for index in range(3):
        conn.execute(
            "INSERT INTO t0002 (handle, amount, parent_id) VALUES (%s, %s, %s)",
            (f"c{index}", index, parent),
        )
    found = conn.execute(
        "SELECT count(*), sum(c.amount) FROM t0002 c JOIN t0001 p ON p.id = c.parent_id"
    ).fetchone()
    if tuple(found) != (3, 3):
        raise AssertionError(f"expected 3 children summing to 3, found {tuple(found)}")


def test_file(admin: Any, migrations: Path) -> tuple[int, dict[str, float]]:
    """One test file's life: create, migrate, test, drop; the migrations it applied and the
    seconds of each of the `PHASES`."""
    name = f"medusa_test_{secrets.token_hex(6)}"
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    admin.execute(f'CREATE DATABASE "{name}"')
    seconds[PHASES[0]] = time.perf_counter() - started
    try:
        started = time.perf_counter()
        with connect(name) as conn:
            applied = apply_migrations(conn, migrations)
            tiny_test(conn)
        seconds[PHASES[1]] = time.perf_counter() - started
    finally:
        started = time.perf_counter()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        seconds[PHASES[2]] = time.perf_counter() - started
    return applied, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/medusa_runner.py", description=__doc__)
    parser.add_argument("migrations", type=Path, help="the folder of *.sql migrations")
    parser.add_argument("--files", type=int, default=10, help="test files to run (default 10)")
    args = parser.parse_args(argv)
    applied: list[int] = []
    seconds: list[dict[str, float]] = []
    try:
        with connect("postgres") as admin:
            for _ in range(args.files):
                count, phases = test_file(admin, args.migrations)
                applied.append(count)
                seconds.append(phases)
    except Exception as exc:
        print(f"medusa-runner: test file {len(applied) + 1} failed: {exc}", file=sys.stderr)
        return 1
    print(SUMMARY + json.dumps({"applied": applied, "seconds": seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
