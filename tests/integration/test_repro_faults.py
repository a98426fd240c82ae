"""Issue 21, items 4-7: roles and owners, where the data lands, partial restores, small faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.lifecycle import environment
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
