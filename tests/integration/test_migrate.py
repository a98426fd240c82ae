"""postgres.migrate: the app's migrations run once after the seed, in the template and the cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.environments import environment, reset
from provisioner.errors import ProfileError, SeedError
from provisioner.profile import load_profile
from tests.conftest import envctl, leftovers, remove_cache_entries, write_profile

# A migration tool in miniature: applies migrations/*.sql in order through DATABASE_URL, as
# alembic or prisma would, and counts its runs.
MIGRATE = """
import os, sys
from pathlib import Path
import psycopg

runs = Path("runs.txt")
runs.write_text(str(int(runs.read_text() or 0) + 1) if runs.exists() else "1")
print("applying", sorted(p.name for p in Path("migrations").glob("*.sql")))
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    for path in sorted(Path("migrations").glob("*.sql")):
        conn.execute(path.read_text())
if os.environ.get("FAIL_MIGRATION"):
    print("error: column does not exist", file=sys.stderr)
    sys.exit(7)
"""


def _project(folder: Path, extra: str = "") -> Path:
    app = folder / "app"
    (app / "migrations").mkdir(parents=True)
    (app / "migrate.py").write_text(MIGRATE)
    (app / "migrations" / "001_items.sql").write_text(
        f"-- {folder}\nCREATE TABLE items (id int PRIMARY KEY, name text);\n"
    )
    (app / "migrations" / "002_rows.sql").write_text(
        "INSERT INTO items VALUES (1, 'one'), (2, 'two');\n"
    )
    text = (
        "name: migrated\npostgres:\n  version: '15'\n"
        "  seed:\n    - sql: CREATE TABLE seeded (n int); INSERT INTO seeded VALUES (1)\n"
        "  migrate:\n"
        f"    command: [{sys.executable!r}, migrate.py]\n"
        "    workdir: app\n"
        "    inputs: ['migrations/*.sql']\n"
        f"{extra}"
        "env:\n  file: null\n"
    )
    return write_profile(folder, text)


def _items(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return [(int(r[0]), str(r[1])) for r in conn.execute("SELECT * FROM items ORDER BY 1")]


def _runs(folder: Path) -> int:
    return int((folder / "app" / "runs.txt").read_text())


def test_migrations_run_after_the_seed_and_reset_goes_back_to_the_migrated_state(
    tmp_path: Path, docker: Any
) -> None:
    profile = load_profile(_project(tmp_path))
    notes: list[str] = []
    with environment(profile, notify=notes.append) as env:
        assert _items(env.url) == [(1, "one"), (2, "two")]
        with psycopg.connect(env.url) as conn:
            assert conn.execute("SELECT count(*) FROM seeded").fetchone() == (1,)
            conn.execute("DELETE FROM items")
            conn.execute("INSERT INTO items VALUES (9, 'nine')")
        reset(env)
        assert _items(env.url) == [(1, "one"), (2, "two")]  # migrated, not the bare seed
    assert _runs(tmp_path) == 1  # once per start, not per reset
    assert any(note.startswith("migrating: ") for note in notes)
    assert any(note.startswith("migrated in ") for note in notes)
    assert leftovers(docker, tmp_path) == []


def test_a_cached_start_runs_no_migration_and_an_edited_input_is_a_miss(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_CACHE", "on")
    path = _project(tmp_path)
    try:
        for _ in range(3):  # seen, kept, then served from the cache
            with environment(load_profile(path)) as env:
                assert _items(env.url) == [(1, "one"), (2, "two")]
        runs = _runs(tmp_path)
        assert runs < 3, "a start from the cache ran the migrations again"
        notes: list[str] = []
        with environment(load_profile(path), notify=notes.append) as env:
            assert any("from the cache" in note for note in notes)
        assert _runs(tmp_path) == runs
        (tmp_path / "app" / "migrations" / "003_more.sql").write_text(
            "INSERT INTO items VALUES (3, 'three');\n"
        )
        with environment(load_profile(path)) as env:
            assert _items(env.url) == [(1, "one"), (2, "two"), (3, "three")]
        assert _runs(tmp_path) == runs + 1
        # An edit of a file that was there (same name, same size) is a miss too.
        rows = tmp_path / "app" / "migrations" / "002_rows.sql"
        rows.write_text(rows.read_text().replace("'two'", "'TWO'"))
        with environment(load_profile(path)) as env:
            assert _items(env.url) == [(1, "one"), (2, "TWO"), (3, "three")]
        assert _runs(tmp_path) == runs + 2
    finally:
        remove_cache_entries(docker, tmp_path)
    assert leftovers(docker, tmp_path) == []


def test_a_failing_migration_names_its_command_and_last_lines_and_leaves_nothing(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_CACHE", "on")
    path = _project(tmp_path, extra="    env: {FAIL_MIGRATION: '1'}\n")
    try:
        result = envctl("run", str(path), "--", "true")
        assert result.returncode == 2, result.stderr
        assert (
            "postgres.migrate: `" in result.stderr and "migrate.py` exited with 7" in result.stderr
        )
        assert "error: column does not exist" in result.stderr
        assert "Traceback" not in result.stderr
        with pytest.raises(SeedError), environment(load_profile(path)):
            pass
        images = docker.images.list(filters={"label": "dev.envctl.cache"})
        mine = [i for i in images if str(tmp_path) in i.labels.get("dev.envctl.cache-profile", "")]
        assert mine == [], "a failed migration was cached"
    finally:
        remove_cache_entries(docker, tmp_path)
    assert leftovers(docker, tmp_path) == []


def test_a_migration_command_that_cannot_run_is_refused_by_validate(tmp_path: Path) -> None:
    path = _project(tmp_path)
    path.write_text(path.read_text().replace(repr(sys.executable), "no-such-migrator"))
    result = envctl("validate", str(path))
    assert result.returncode == 2
    assert "postgres.migrate.command: 'no-such-migrator' was not found" in result.stderr
    path.write_text(path.read_text().replace("workdir: app", "workdir: nowhere"))
    with pytest.raises(ProfileError, match=r"postgres.migrate.workdir: .*nowhere is not a folder"):
        from provisioner.preflight import check_before_start

        check_before_start(load_profile(path))


def test_the_suite_gets_the_migrated_database_through_the_cli(tmp_path: Path, docker: Any) -> None:
    path = _project(tmp_path)
    check = (
        "import os, json, psycopg;"
        "c = psycopg.connect(os.environ['DATABASE_URL']);"
        "print(json.dumps(c.execute('SELECT count(*) FROM items').fetchone()))"
    )
    result = envctl("run", str(path), "--", sys.executable, "-c", check)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [2]
    assert "migrating: " in result.stderr
    assert leftovers(docker, tmp_path) == []


def _new_database_tables(env: Any, name: str) -> list[str]:
    """CREATE DATABASE with no TEMPLATE, as a suite's runner does it, and the tables it has."""
    admin = env.connection.with_database("postgres")
    with psycopg.connect(admin.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(env.connection.with_database(name).url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_template1_makes_every_new_database_start_migrated_also_from_the_cache(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_CACHE", "on")
    path = _project(tmp_path, extra="  template1: true\n")
    try:
        for start in range(2):  # the start that migrates and keeps, then one from the cache
            notes: list[str] = []
            with environment(load_profile(path), notify=notes.append) as env:
                assert _new_database_tables(env, f"file_{start}") == ["items", "seeded"]
                assert _items(env.connection.with_database(f"file_{start}").url) == [
                    (1, "one"),
                    (2, "two"),
                ]
                reset(env)  # the working database goes back; template1 stays migrated
                assert _new_database_tables(env, "after_reset") == ["items", "seeded"]
            assert any("from the cache" in note for note in notes) == (start == 1)
        assert _runs(tmp_path) == 1
    finally:
        remove_cache_entries(docker, tmp_path)
    assert leftovers(docker, tmp_path) == []


def test_without_template1_a_new_database_is_empty(tmp_path: Path, docker: Any) -> None:
    with environment(load_profile(_project(tmp_path))) as env:
        assert _new_database_tables(env, "file_1") == []
    assert leftovers(docker, tmp_path) == []
