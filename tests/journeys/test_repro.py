"""Journeys of `envctl repro BACKUP`: a user with a customer's backup, on the default runtime.

The backups are made on the fly by the servers and pg_dump of two majors (tests/dumps.py);
each journey checks the exit code, the words the user reads, the data in the restored
database (from the suite command's DATABASE_URL, or the env file), and `envctl down`.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.dumps import (
    EXPECTED_CHECKSUMS,
    MANAGED_LABELS,
    SAMPLE_CHECKSUM_SQL,
    SAMPLE_DATABASE,
    _copy_out,
    _run,
    _start_server,
    make_dumps,
)
from tests.journeys.conftest import OFFICIAL_IMAGE, Journey

pytestmark = pytest.mark.journey

# What the suite command of a journey runs: the checksums of the sample data, as JSON.
CHECK_SCRIPT = f"""
import json, os, sys
import psycopg
from psycopg.conninfo import make_conninfo
url = os.environ["DATABASE_URL"]
if len(sys.argv) > 1:
    url = make_conninfo(url, dbname=sys.argv[1])
with psycopg.connect(url) as conn:
    if len(sys.argv) > 2:
        rows = conn.execute(sys.argv[2]).fetchall()
    else:
        rows = conn.execute({SAMPLE_CHECKSUM_SQL!r}).fetchall()
print(json.dumps({{str(r[0]): [int(r[1]), str(r[2])] for r in rows}}))
"""
EXPECTED = {name: list(value) for name, value in EXPECTED_CHECKSUMS.items()}

# pg_dump since 11 never creates `public` (it writes "-- *not* creating schema"); pg_dump
# before 11 did (CREATE SCHEMA public, COMMENT ON SCHEMA public), which fails on a new
# database with 'schema "public" already exists'. Such a dump is made from a database whose
# only schema is `publix`, dumped uncompressed and renamed byte for byte (same length).
LEGACY_SQL = """
DROP SCHEMA public;
CREATE SCHEMA publix;
COMMENT ON SCHEMA publix IS 'standard public schema';
CREATE TABLE publix.films (id int PRIMARY KEY, title text NOT NULL);
INSERT INTO publix.films SELECT g, 'film ' || g FROM generate_series(1, 42) AS g;
"""
FILMS_QUERY = "SELECT 'films', count(*), min(title) FROM public.films"
EXTRA_SCRIPT = f"""
set -euo pipefail
mkdir -p /tmp/extra
pg_dump -d {SAMPLE_DATABASE} --create -f /tmp/extra/create.sql
createdb legacy
psql -X -q -v ON_ERROR_STOP=1 -d legacy -c "{LEGACY_SQL}"
pg_dump -d legacy -Fc -Z0 -f /tmp/extra/legacy.dump
"""


@pytest.fixture(scope="session")
def backups(journey_docker: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Path]:
    """(major, key) -> every shape of tests/dumps.py, by 15 and 17; plus "create" (a
    `pg_dump --create` plain dump), "legacy" (custom, creates SCHEMA public) and "16" (a plain
    dump whose header says PostgreSQL 16, a major with no image here)."""
    folder = tmp_path_factory.mktemp("journey-backups")
    found: dict[Any, Path] = {}
    for major in (15, 17):
        image = OFFICIAL_IMAGE.format(major=major)
        made = make_dumps(journey_docker, major, folder / str(major), image=image)
        found.update({(major, key): path for key, path in made.items()})
    found.update(_extra_dumps(journey_docker, folder / "extra"))
    plain_15 = found[(15, "plain")].read_text()
    found["16"] = folder / "from-16.sql"
    found["16"].write_text(
        plain_15.replace("database version 15.", "database version 16.").replace(
            "pg_dump version 15.", "pg_dump version 16."
        )
    )
    assert "database version 16." in found["16"].read_text()
    return found


def _extra_dumps(client: Any, folder: Path) -> dict[str, Path]:
    from tests.dumps import SAMPLE_SQL

    folder.mkdir(parents=True)
    container = client.containers.run(
        OFFICIAL_IMAGE.format(major=17),
        ["sleep", "infinity"],
        entrypoint=[],
        name=f"envctl-journey-dumps-{uuid.uuid4().hex[:8]}",
        labels={**MANAGED_LABELS, "dev.envctl.state-dir": str(folder)},
        environment={"TZ": "UTC", "LC_ALL": "C.UTF-8"},
        detach=True,
    )
    try:
        _start_server(container)
        _run(container, ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", SAMPLE_DATABASE,
                         "-c", SAMPLE_SQL])  # fmt: skip
        _run(container, ["bash", "-c", EXTRA_SCRIPT])
        _copy_out(container, "/tmp/extra", folder)
    finally:
        container.remove(force=True, v=True)
    legacy = folder / "legacy.dump"
    made = legacy.read_bytes()
    assert made.count(b"publix") >= 3  # the schema, its comment, the table and its data
    legacy.write_bytes(made.replace(b"publix", b"public"))
    return {"create": folder / "create.sql", "legacy": legacy}


def _backup_in(journey: Journey, source: Path) -> Path:
    """The backup as the user has it: in their own folder."""
    target = journey.workdir / source.name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    return target


def _check(journey: Journey, *args: str) -> list[str]:
    script = journey.workdir / "check.py"
    script.write_text(CHECK_SCRIPT)
    return ["--", sys.executable, str(script), *args]


def _data(result: Any) -> dict[str, list[Any]]:
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the suite command printed no data: {result.stdout!r} {result.stderr!r}"
    return dict(json.loads(lines[-1]))


def _down(journey: Journey, backup: Path) -> None:
    gone = journey.envctl("down", backup.name)
    assert gone.returncode == 0, gone.stderr
    assert "removed container" in gone.stderr


@pytest.mark.parametrize("major", [15, 17])
@pytest.mark.parametrize("key", ["custom", "tar", "directory", "plain"])
def test_repro_restores_a_backup_with_no_flag(
    journey: Journey, backups: dict[Any, Path], major: int, key: str
) -> None:
    backup = _backup_in(journey, backups[(major, key)])
    result = journey.envctl("repro", backup.name, *_check(journey))
    assert result.returncode == 0, result.stderr
    assert f"runtime: docker, because the engine answers and has postgres:{major}" in result.stderr
    assert f"starting Postgres {major} (docker: postgres:{major})" in result.stderr
    assert f"it stays up; remove it with: envctl down {backup.name}" in result.stderr
    assert _data(result) == EXPECTED
    _down(journey, backup)


def test_repro_of_a_pg_dumpall_restores_its_databases(
    journey: Journey, backups: dict[Any, Path]
) -> None:
    backup = _backup_in(journey, backups[(17, "cluster")])
    result = journey.envctl("repro", backup.name, *_check(journey, SAMPLE_DATABASE))
    assert result.returncode == 0, result.stderr
    assert "restoring cluster.sql (cluster)" in result.stderr
    assert _data(result) == EXPECTED  # in its own database (where DATABASE_URL points: #21.5)
    _down(journey, backup)


def test_repro_of_a_create_dump_does_not_crash(journey: Journey, backups: dict[Any, Path]) -> None:
    backup = _backup_in(journey, backups["create"])
    result = journey.envctl("repro", backup.name, *_check(journey, SAMPLE_DATABASE))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert _data(result) == EXPECTED
    _down(journey, backup)


def test_repro_of_a_dump_that_creates_schema_public(
    journey: Journey, backups: dict[Any, Path]
) -> None:
    backup = _backup_in(journey, backups["legacy"])
    result = journey.envctl("repro", backup.name, *_check(journey, "test", FILMS_QUERY))
    assert result.returncode == 0, result.stderr
    assert (
        "skipping CREATE SCHEMA public, COMMENT ON SCHEMA public of legacy.dump: every new "
        "database has them (old pg_dump releases wrote them)" in result.stderr
    )
    assert _data(result) == {"films": [42, "film 1"]}
    _down(journey, backup)


def test_up_of_a_profile_with_version_auto(journey: Journey, backups: dict[Any, Path]) -> None:
    from dotenv import dotenv_values

    _backup_in(journey, backups[(15, "custom")])
    profile = journey.workdir / "envctl.yaml"
    profile.write_text("name: shop\npostgres:\n  version: auto\n  seed: [custom.dump]\n")
    result = journey.envctl("up", profile.name)
    assert result.returncode == 0, result.stderr
    assert "runtime: docker, because the engine answers and has postgres:15" in result.stderr
    assert f"wrote {journey.workdir / '.env.test'}" in result.stderr
    url = dotenv_values(journey.workdir / ".env.test")["DATABASE_URL"]
    import psycopg

    from tests.dumps import checksums

    with psycopg.connect(url) as conn:
        assert checksums(conn.execute(SAMPLE_CHECKSUM_SQL).fetchall()) == EXPECTED_CHECKSUMS
        assert conn.info.server_version // 10000 == 15
    gone = journey.envctl("down", profile.name)
    assert gone.returncode == 0, gone.stderr
    assert not (journey.workdir / ".env.test").exists()


def test_a_backup_of_an_absent_major_names_the_majors_here_then_nearest_restores_it(
    journey: Journey, backups: dict[Any, Path]
) -> None:
    backup = _backup_in(journey, backups["16"])
    refused = journey.envctl("repro", backup.name)
    assert refused.returncode == 3, refused.stderr
    assert "error: PostgreSQL 16 cannot run here" in refused.stderr
    assert "majors here: 15 (image postgres:15" in refused.stderr
    assert "17 (image postgres:17)" in refused.stderr
    assert "hint: use --version nearest (restores into 17, the nearest newer major here)" in (
        refused.stderr
    )
    assert "postgres.version" not in refused.stderr
    assert "Traceback" not in refused.stderr

    result = journey.envctl("repro", backup.name, "--version", "nearest", *_check(journey))
    assert result.returncode == 0, result.stderr
    assert (
        "the backup comes from PostgreSQL 16, which is not here: restoring into 17, the nearest "
        "newer major here" in result.stderr
    )
    assert "starting Postgres 17 (docker: postgres:17)" in result.stderr
    assert _data(result) == EXPECTED
    _down(journey, backup)


@pytest.mark.parametrize("key", ["cluster", "create"])
def test_repro_points_the_environment_at_the_database_the_backup_creates(
    journey: Journey, backups: dict[Any, Path], key: str
) -> None:
    backup = _backup_in(journey, backups[(17, key)] if key == "cluster" else backups[key])
    result = journey.envctl("repro", backup.name, *_check(journey))  # DATABASE_URL as it is
    assert result.returncode == 0, result.stderr
    assert f"the data is in database {SAMPLE_DATABASE} (the backup creates it)" in result.stderr
    assert _data(result) == EXPECTED
    _down(journey, backup)


def test_repro_of_a_truncated_plain_dump_is_refused_before_anything_starts(
    journey: Journey, backups: dict[Any, Path]
) -> None:
    backup = _backup_in(journey, backups[(15, "plain")])
    text = backup.read_text()
    backup.write_text(text[: len(text) * 2 // 3].rsplit("\n", 1)[0] + "\n")
    result = journey.envctl("repro", backup.name)
    assert result.returncode == 2, result.stderr
    assert "plain.sql is truncated: a pg_dump file ends with '-- PostgreSQL database dump " in (
        result.stderr
    )
    assert "starting Postgres" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("major", [15, 17])
def test_inspect_verify_reads_every_block_of_a_custom_dump(
    journey: Journey, backups: dict[Any, Path], major: int
) -> None:
    backup = _backup_in(journey, backups[(major, "custom")])
    result = journey.envctl("inspect", "--verify", backup.name)
    assert result.returncode == 0, result.stderr
    assert "verified:          every block read by pg_restore" in result.stdout


def test_reset_env_and_dump_of_a_repro_backup(journey: Journey, backups: dict[Any, Path]) -> None:
    backup = _backup_in(journey, backups[(15, "custom")])
    assert journey.envctl("repro", backup.name).returncode == 0
    variables = journey.envctl("env", backup.name)
    assert variables.returncode == 0, variables.stderr
    assert "DATABASE_URL=" in variables.stdout
    reset = journey.envctl("reset", backup.name)
    assert reset.returncode == 0, reset.stderr
    written = journey.envctl("dump", backup.name, "-o", "again.dump")
    assert written.returncode == 0, written.stderr
    _down(journey, backup)
