"""A small stand-alone migration tool, built like the real ones (alembic, MikroORM, rails).

`python bench/migrator.py FOLDER [--url URL]` (DATABASE_URL by default) keeps a table
`schema_migrations` of what it applied and applies, in name order, every `*.sql` in FOLDER not
recorded there, each in its own transaction together with its record: what an app's migration
step costs, so that the benchmark can measure envctl's `postgres.migrate` and a Medusa-style
runner against it. It prints how many it applied. Stdlib and psycopg 3 only, so that it runs
as the migration step of a profile without the benchmark's imports.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)


def apply_migrations(conn: Any, folder: Path) -> int:
    """Apply the pending `*.sql` of `folder` on the psycopg connection `conn`; how many.

    `conn` must be in autocommit mode: each file gets its own transaction, as a real tool's
    does, so that a failing file leaves the ones before it applied.
    """
    conn.execute(LEDGER)
    done = {name for (name,) in conn.execute("SELECT name FROM schema_migrations").fetchall()}
    applied = 0
    for path in sorted(folder.glob("*.sql")):
        if path.name in done:
            continue
        with conn.transaction():
            conn.execute(path.read_text())  # no parameters: several statements in one string
            conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
        applied += 1
    return applied


def migrate(url: str, folder: Path) -> int:
    """Connect to `url` and apply the pending migrations of `folder`; how many."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return apply_migrations(conn, folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/migrator.py", description=__doc__)
    parser.add_argument("folder", type=Path, help="the folder of *.sql migrations")
    parser.add_argument("--url", default=os.environ.get("DATABASE_URL"), help="(DATABASE_URL)")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("no database: set DATABASE_URL or pass --url")
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    print(f"applied {migrate(args.url, args.folder)} migration(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
