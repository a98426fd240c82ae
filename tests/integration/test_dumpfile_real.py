"""Backups made by the test images' own pg_dump and pg_dumpall, read without any Postgres tool."""

from __future__ import annotations

import io
import re
import tarfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from provisioner.errors import SeedError
from provisioner.postgres.dumpfile import (
    inspect_dump,
    newer_than_error,
    open_dump,
    rewrite_tool_error,
)
from tests.conftest import TEST_IMAGE_TEMPLATE
from tests.dumps import DUMP_FILES, EXPECTED_FORMATS, SAMPLE_DATABASE

pytestmark = pytest.mark.docker

# 18 is optional: tests/images/build.py makes it only when asked.
MAJORS = (15, 17, 18)
ARCHIVE_VERSIONS = {15: "1.14", 17: "1.16", 18: "1.16"}
ARCHIVES = ("custom", "custom_uncompressed", "custom_piped", "tar", "directory")
TOC_COUNTS = {
    "constraints": 3,  # two primary keys and the UNIQUE on sku
    "extensions": 2,  # pgcrypto, citext
    "foreign_keys": 1,
    "functions": 1,
    "indexes": 1,
    "large_objects": 1,
    "schemas": 1,
    "sequences": 3,  # identity, serial and the standalone one
    "table_data": 2,
    "tables": 2,
    "views": 1,
}


def dumps_of(real_dumps: dict[int, dict[str, Path]], major: int) -> dict[str, Path]:
    return real_dumps[major]  # every one of DUMP_MAJORS, or the fixture failed in CI


@pytest.mark.parametrize("kind", sorted(DUMP_FILES))
@pytest.mark.parametrize("major", MAJORS)
def test_every_real_backup_shape_is_detected_by_content(
    real_dumps: dict[int, dict[str, Path]], major: int, kind: str
) -> None:
    info = inspect_dump(dumps_of(real_dumps, major)[kind])
    assert info.format == EXPECTED_FORMATS[kind]
    if kind != "globals":  # pg_dumpall --globals-only writes no version lines
        assert info.server_major == major
        assert info.pg_dump_version and info.pg_dump_version.startswith(f"{major}.")
        assert info.required_major == major


@pytest.mark.parametrize("kind", ARCHIVES)
@pytest.mark.parametrize("major", MAJORS)
def test_archive_headers_give_versions_database_time_and_toc_counts(
    real_dumps: dict[int, dict[str, Path]], major: int, kind: str
) -> None:
    info = inspect_dump(dumps_of(real_dumps, major)[kind])
    assert info.archive_version == ARCHIVE_VERSIONS[major]
    assert info.server_version and info.server_version.startswith(f"{major}.")
    assert info.database == SAMPLE_DATABASE
    # the containers run in UTC, and archives store the dumping machine's local time
    assert info.created is not None
    now = datetime.now(UTC).replace(tzinfo=None)
    assert now - timedelta(hours=1) < info.created <= now + timedelta(minutes=1)
    assert info.counts == TOC_COUNTS
    expected = {"custom_uncompressed": "none", "tar": "none"}.get(kind, "gzip")
    assert info.compression == expected


@pytest.mark.parametrize("major", MAJORS)
def test_plain_sql_reads_the_same_counts_from_pg_dumps_comments(
    real_dumps: dict[int, dict[str, Path]], major: int
) -> None:
    dumps = dumps_of(real_dumps, major)
    plain = inspect_dump(dumps["plain"])
    assert plain.counts == TOC_COUNTS
    assert (plain.archive_version, plain.compression, plain.wrapped) == (None, None, None)
    cluster = inspect_dump(dumps["cluster"])
    assert cluster.counts["databases"] == 3  # template1, postgres, shop
    assert cluster.counts["roles"] == 2  # app_owner, postgres
    assert inspect_dump(dumps["globals"]).counts == {"roles": 2}


@pytest.mark.parametrize("major", MAJORS)
def test_wrapped_backups_unwrap_to_the_real_dump(
    real_dumps: dict[int, dict[str, Path]], major: int, tmp_path: Path
) -> None:
    dumps = dumps_of(real_dumps, major)

    readable, info = open_dump(dumps["plain_gzip"], tmp_path)
    assert (info.wrapped, info.compression) == ("gzip", "gzip")
    assert without_restrict_key(readable) == without_restrict_key(dumps["plain"])

    readable, info = open_dump(dumps["custom_in_tar"], tmp_path)
    assert info.wrapped == "tar member shop.dump"
    assert readable.read_bytes() == dumps["custom"].read_bytes()

    readable, info = open_dump(dumps["directory_zip_macos"], tmp_path)
    assert info.wrapped == "zip folder directory (macOS resource files skipped)"
    original = {p.name: p.read_bytes() for p in dumps["directory"].iterdir()}
    assert {p.name: p.read_bytes() for p in readable.iterdir()} == original

    for kind in ("custom", "custom_named_tar", "tar", "directory", "plain", "cluster"):
        readable, info = open_dump(dumps[kind], tmp_path)
        assert (readable, info.wrapped) == (dumps[kind], None)


@pytest.mark.parametrize("major", MAJORS)
def test_real_custom_archives_cut_short_are_truncated(
    real_dumps: dict[int, dict[str, Path]], major: int, tmp_path: Path
) -> None:
    dumps = dumps_of(real_dumps, major)
    for kind in ("custom", "custom_piped"):
        whole = dumps[kind].read_bytes()
        for cut in (40, 2000, len(whole) - 10):  # header, table of contents, data
            path = tmp_path / f"{kind}-{cut}.dump"
            path.write_bytes(whole[:cut])
            with pytest.raises(SeedError, match="truncated") as caught:
                inspect_dump(path)
            assert str(path) in caught.value.message


def test_newer_than_error_names_the_backups_major_and_the_target(
    real_dumps: dict[int, dict[str, Path]],
) -> None:
    info = inspect_dump(dumps_of(real_dumps, 17)["custom"])
    error = newer_than_error(info, 15)
    assert "made by PostgreSQL 17" in error.message and "PostgreSQL 15" in error.message
    assert error.hint and "use version 17 or auto" in error.hint


def test_an_older_pg_restores_real_complaint_is_rewritten(
    real_dumps: dict[int, dict[str, Path]], docker: Any, private_state: Path
) -> None:
    """pg_restore 15 reading a 17 archive: the real message, turned into the friendly one."""
    dump = dumps_of(real_dumps, 17)["custom"]
    container = docker.containers.run(
        TEST_IMAGE_TEMPLATE.format(major=15),
        ["sleep", "infinity"],
        entrypoint=[],
        name=f"envctl-pgrestore-{uuid.uuid4().hex[:8]}",
        labels={"dev.envctl.managed": "true", "dev.envctl.state-dir": str(private_state)},
        detach=True,
    )
    try:
        container.put_archive("/tmp", _tar_of(dump, "shop.dump"))
        code, output = container.exec_run(["pg_restore", "--list", "/tmp/shop.dump"])
    finally:
        container.remove(force=True, v=True)
    text = output.decode()
    assert code != 0 and "unsupported version (1.16) in file header" in text
    message = rewrite_tool_error(text, inspect_dump(dump))
    assert message and "made by PostgreSQL 17" in message and str(dump) in message


def without_restrict_key(path: Path) -> bytes:
    # pg_dump 17.6/16.10/15.14+ writes a random \restrict key into every plain dump
    return re.sub(rb"^\\(un)?restrict \S+$", b"", path.read_bytes(), flags=re.M)


def _tar_of(path: Path, name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(path, arcname=name)
    return buffer.getvalue()
