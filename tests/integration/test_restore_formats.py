"""Every shape of real backup, from 15 and 17, restores into the matching Postgres intact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.environments import environment
from provisioner.errors import SeedError
from provisioner.profile import load_profile
from tests.conftest import leftovers, write_profile
from tests.dumps import EXPECTED_CHECKSUMS, SAMPLE_CHECKSUM_SQL, checksums

pytestmark = pytest.mark.docker

SINGLE_DATABASE = [
    "plain",
    "plain_gzip",
    "custom",
    "custom_uncompressed",
    "custom_piped",
    "custom_named_tar",
    "tar",
    "directory",
    "directory_zip_macos",
    "custom_in_tar",
]


def auto_profile(folder: Path, backup: Path, extra: str = "") -> Any:
    text = (
        "name: restore\npostgres:\n  version: auto\n"
        f"  seed:\n    - path: {str(backup)!r}\n{extra}env:\n  file: null\n"
    )
    return load_profile(write_profile(folder, text))


@pytest.mark.parametrize("kind", SINGLE_DATABASE)
@pytest.mark.parametrize("major", [15, 17])
def test_each_format_restores_into_the_major_it_came_from(
    tmp_path: Path, docker: Any, real_dumps: dict[int, dict[str, Path]], major: int, kind: str
) -> None:
    profile = auto_profile(tmp_path, real_dumps[major][kind])
    with environment(profile) as env, psycopg.connect(env.url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version and int(version[0]) // 10000 == major  # version: auto
        assert checksums(conn.execute(SAMPLE_CHECKSUM_SQL).fetchall()) == EXPECTED_CHECKSUMS
        owner = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE tablename IN ('products', 'orders')"
        )
        assert {row[0] for row in owner.fetchall()} == {"app_owner"}  # owners: create
    assert leftovers(docker, tmp_path) == []


def test_owners_drop_restores_without_the_dumps_roles(
    tmp_path: Path, docker: Any, real_dumps: dict[int, dict[str, Path]]
) -> None:
    extra = "      owners: drop\n      jobs: 2\n"
    profile = auto_profile(tmp_path, real_dumps[17]["directory"], extra)
    with environment(profile) as env, psycopg.connect(env.url) as conn:
        assert checksums(conn.execute(SAMPLE_CHECKSUM_SQL).fetchall()) == EXPECTED_CHECKSUMS
        roles = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'app_owner'").fetchall()
        assert roles == []


def test_a_17_backup_is_refused_for_15_with_both_versions_named(
    tmp_path: Path, docker: Any, real_dumps: dict[int, dict[str, Path]]
) -> None:
    text = f"name: old\npostgres:\n  version: '15'\n  seed: [{str(real_dumps[17]['custom'])!r}]\n"
    with pytest.raises(SeedError) as info:
        from provisioner.environments import up

        up(load_profile(write_profile(tmp_path, text)))
    assert "made by PostgreSQL 17; PostgreSQL 15 cannot restore it" in info.value.message
    assert leftovers(docker, tmp_path) == []


def test_a_full_cluster_dump_keeps_envctls_login_working(
    tmp_path: Path, docker: Any, real_dumps: dict[int, dict[str, Path]]
) -> None:
    profile = auto_profile(tmp_path, real_dumps[15]["cluster"])
    with environment(profile) as env:
        with psycopg.connect(env.url) as conn:  # our password survived the dump's ALTER ROLE
            databases = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            assert "shop" in databases
        with psycopg.connect(env.connection.with_database("shop").url) as conn:
            assert checksums(conn.execute(SAMPLE_CHECKSUM_SQL).fetchall()) == EXPECTED_CHECKSUMS


def test_truncated_and_non_sql_files_are_clear_errors_that_start_nothing(
    tmp_path: Path, docker: Any, real_dumps: dict[int, dict[str, Path]]
) -> None:
    data = real_dumps[15]["custom"].read_bytes()
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(data[: len(data) // 2])
    notes = tmp_path / "notes.sql"
    notes.write_text("Hello team,\nhere is the backup you asked for.\n")
    for bad in (truncated, notes):
        text = f"name: bad\npostgres:\n  version: '15'\n  seed: [{str(bad)!r}]\n"
        with pytest.raises(SeedError) as info:
            from provisioner.environments import up

            up(load_profile(write_profile(tmp_path, text)))
        assert str(bad) in info.value.message
    assert leftovers(docker, tmp_path) == []
