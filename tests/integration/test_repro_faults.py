"""Issue 21, items 4-7: roles and owners, where the data lands, partial restores, small faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.lifecycle import environment, find, repro_profile, reset
from provisioner.profile import load_profile
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
    )
    profile = load_profile(_profile(tmp_path, "    - {path: owned.sql, owners: drop}\n"))
    with environment(profile) as env, psycopg.connect(env.url) as conn:
        row = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 't'").fetchone()
        assert row == (env.user,)
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'ghost'").fetchone() is None


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
