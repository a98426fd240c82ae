"""Seeds against real servers: roles, extensions, schemas, SQL, archives, reset, dump, repro."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.environments import dump, environment, reset, up
from provisioner.errors import SeedError
from provisioner.profile import load_profile
from tests.conftest import envctl, leftovers, write_profile

pytestmark = pytest.mark.docker

SCHEMA_SQL = """\
CREATE TABLE app.customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email citext UNIQUE NOT NULL,
    secret text NOT NULL
);
ALTER TABLE app.customers OWNER TO app_owner;
INSERT INTO app.customers (email, secret)
SELECT 'user' || n || '@example.com', encode(digest(n::text, 'sha256'), 'hex')
FROM generate_series(1, 500) AS n;
"""
CHECKSUM = "SELECT count(*), md5(string_agg(email || secret, ',' ORDER BY id)) FROM app.customers"


def seeded_profile(folder: Path, major: int = 15, extra: str = "") -> Path:
    (folder / "schema.sql").write_text(SCHEMA_SQL)
    return write_profile(
        folder,
        f"name: seeded\npostgres:\n  version: '{major}'\n"
        "  roles: [app_owner, {name: reader, password: r3ader}]\n"
        "  extensions: [pgcrypto, citext]\n"
        "  schemas: [app]\n"
        "  seed:\n"
        "    - schema.sql\n"
        "    - sql: GRANT USAGE ON SCHEMA app TO reader; GRANT SELECT ON app.customers TO reader\n"
        + extra
        + "env:\n  file: null\n",
    )


def test_seeded_state_survives_reset_and_round_trips_through_dump(
    tmp_path: Path, docker: Any
) -> None:
    profile = load_profile(seeded_profile(tmp_path))
    backup = tmp_path / "backup.dump"
    with environment(profile) as env:
        with psycopg.connect(env.url) as conn:
            seeded = conn.execute(CHECKSUM).fetchone()
            assert seeded and seeded[0] == 500
            conn.execute("DELETE FROM app.customers WHERE id > 10")
            conn.commit()
            assert conn.execute(CHECKSUM).fetchone() != seeded
        # The role from the profile logs in with its password and sees what it was granted.
        reader = env.connection.url.replace(f"{env.user}:", "reader:").replace(
            env.password, "r3ader"
        )
        with psycopg.connect(reader) as conn:
            assert conn.execute("SELECT count(*) FROM app.customers").fetchone() == (10,)
        # A connection still open during reset is ended, not waited for.
        open_conn = psycopg.connect(env.url)
        try:
            seconds = reset(env)
            assert seconds < 30
            with pytest.raises(psycopg.OperationalError):  # it was terminated
                open_conn.execute("SELECT 1")
        finally:
            open_conn.close()
        with psycopg.connect(env.url) as conn:
            assert conn.execute(CHECKSUM).fetchone() == seeded
        dump(env, backup)
        assert backup.stat().st_mode & 0o777 == 0o600
    assert backup.read_bytes()[:5] == b"PGDMP"

    restored_profile = write_profile(
        tmp_path,
        "name: restored\npostgres:\n  version: auto\n  seed: [backup.dump]\nenv:\n  file: null\n",
        name="restored.yaml",
    )
    with environment(load_profile(restored_profile)) as env, psycopg.connect(env.url) as conn:
        assert conn.execute(CHECKSUM).fetchone() == seeded
        owner = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'customers'"
        ).fetchone()
        assert owner == ("app_owner",)  # owners: create made the missing role


def test_reset_via_cli(tmp_path: Path, docker: Any) -> None:
    profile = seeded_profile(tmp_path)
    assert envctl("up", str(profile)).returncode == 0
    try:
        env = load_profile(profile)
        from provisioner.environments import find

        running = find(env)
        assert running is not None
        with psycopg.connect(running.url, autocommit=True) as conn:
            conn.execute("TRUNCATE app.customers")
        result = envctl("reset", str(profile))
        assert result.returncode == 0, result.stderr
        assert "seeded state" in result.stderr
        with psycopg.connect(running.url) as conn:
            assert conn.execute("SELECT count(*) FROM app.customers").fetchone() == (500,)
    finally:
        envctl("down", str(profile))


def test_a_failing_sql_seed_names_file_line_and_statement_and_leaves_nothing(
    tmp_path: Path, docker: Any
) -> None:
    (tmp_path / "broken.sql").write_text(
        "CREATE TABLE ok (id int);\n\nINSERT INTO missing_table VALUES (1);\nSELECT 1;\n"
    )
    profile = write_profile(
        tmp_path, "name: broken\npostgres:\n  version: '15'\n  seed: [broken.sql]\n"
    )
    result = envctl("up", str(profile))
    assert result.returncode == 2
    assert f"{tmp_path / 'broken.sql'}: line 3:" in result.stderr
    assert 'relation "missing_table" does not exist' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".env.test").exists()
    assert leftovers(docker, tmp_path) == []


def test_a_backup_from_a_newer_major_is_refused_before_anything_starts(
    tmp_path: Path, docker: Any
) -> None:
    source = load_profile(seeded_profile(tmp_path, major=17))
    backup = tmp_path / "from17.dump"
    with environment(source) as env:
        dump(env, backup)
    into15 = write_profile(
        tmp_path,
        "name: old\npostgres:\n  version: '15'\n  seed: [from17.dump]\n",
        name="into15.yaml",
    )
    with pytest.raises(SeedError) as info:
        up(load_profile(into15))
    assert "made by PostgreSQL 17; PostgreSQL 15 cannot restore it" in info.value.message
    assert leftovers(docker, tmp_path) == []

    auto = write_profile(
        tmp_path,
        "name: auto\npostgres:\n  version: auto\n  seed: [from17.dump]\nenv:\n  file: null\n",
        name="auto.yaml",
    )
    with environment(load_profile(auto)) as env, psycopg.connect(env.url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version and int(version[0]) // 10000 == 17


def test_repro_restores_a_backup_and_stays_until_down(tmp_path: Path, docker: Any) -> None:
    source = load_profile(seeded_profile(tmp_path))
    backup = tmp_path / "customer-bug.dump"
    with environment(source) as env:
        dump(env, backup)
    marker = tmp_path / "ran"
    result = envctl(
        "repro",
        str(backup),
        "--",
        "sh",
        "-c",
        f'echo "$DATABASE_URL" > {marker}',
    )
    assert result.returncode == 0, result.stderr
    assert "envctl down" in result.stderr
    url = marker.read_text().strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM app.customers").fetchone() == (500,)
    removed = envctl("down", str(backup))
    assert removed.returncode == 0, removed.stderr
    assert leftovers(docker, tmp_path) == []
