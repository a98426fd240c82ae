"""Backup detection and header reading on synthetic files: every edge without Docker."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from provisioner.errors import SeedError
from provisioner.postgres.dumpfile import (
    DumpInfo,
    inspect_dump,
    newer_than_error,
    open_dump,
    rewrite_tool_error,
)

# --- a tiny pg_dump archive writer (WriteHead/WriteToc/WriteInt/WriteStr, custom format) ------


@dataclass(frozen=True)
class Entry:
    dump_id: int
    desc: str
    tag: str = "t"
    definition: str = ""
    data: bytes | None = None  # custom: one data block; tar/directory: a file NNNN.dat
    filename: str | None = None


def write_int(value: int) -> bytes:
    return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(4, "little")


def write_str(value: str | None) -> bytes:
    if value is None:
        return write_int(-1)
    raw = value.encode()
    return write_int(len(raw)) + raw


def archive(
    entries: list[Entry],
    *,
    minor: int = 16,
    fmt: int = 1,
    compression: int = 0,
    server: str = "16.4 (Debian 16.4-1.pgdg120+2)",
    pg_dump: str = "16.4 (Debian 16.4-1.pgdg120+2)",
    database: str = "app",
    offsets: bool = True,
) -> bytes:
    """A custom (fmt=1) archive, or a tar/directory toc.dat (fmt=3), as pg_dump writes it."""

    def build(data_start: int) -> tuple[bytes, bytes]:
        head = b"PGDMP" + bytes([1, minor, 0, 4, 8, fmt])
        head += bytes([compression]) if minor >= 15 else write_int(compression)
        for value in (5, 4, 3, 2, 0, 124, 0):  # 2024-01-02 03:04:05
            head += write_int(value)
        head += write_str(database) + write_str(server) + write_str(pg_dump)
        toc, blocks = write_int(len(entries)), b""
        for entry in entries:
            toc += write_int(entry.dump_id) + write_int(1 if entry.data is not None else 0)
            toc += write_str("1259") + write_str("16384")
            toc += write_str(entry.tag) + write_str(entry.desc)
            toc += write_int(2)  # section
            toc += write_str(entry.definition) + write_str("") + write_str("")
            toc += write_str("public") + write_str("")
            if minor >= 14:
                toc += write_str("heap")
            if minor >= 16:
                toc += write_int(ord("r"))
            toc += write_str("owner") + write_str("false")
            toc += write_str("1") + write_str(None)  # one dependency, then the end
            if fmt == 1:
                if entry.data is None:
                    toc += bytes([3]) + bytes(8)
                else:
                    position = data_start + len(blocks) if offsets else 0
                    toc += bytes([2 if offsets else 1]) + position.to_bytes(8, "little")
                    blocks += bytes([1]) + write_int(entry.dump_id)
                    blocks += write_int(len(entry.data)) + entry.data + write_int(0)
            else:
                toc += write_str(entry.filename)
        return head + toc, blocks

    first, _ = build(0)
    header_and_toc, blocks = build(len(first))
    return header_and_toc + blocks


SAMPLE_ENTRIES = [
    Entry(1, "ENCODING", "ENCODING", "SET client_encoding = 'UTF8';\n"),
    Entry(2, "SCHEMA", "app"),
    Entry(3, "EXTENSION", "citext"),
    Entry(4, "TABLE", "users"),
    Entry(5, "SEQUENCE", "users_id_seq"),
    Entry(6, "VIEW", "active_users"),
    Entry(7, "FUNCTION", "touch()"),
    Entry(8, "BLOB METADATA", "1..2", "SELECT pg_catalog.lo_create('1');\nSELECT lo_create('2');"),
    Entry(9, "TABLE DATA", "users", data=b"1\talice\n2\tbob\n", filename="9.dat"),
    Entry(10, "INDEX", "users_name_idx"),
    Entry(11, "CONSTRAINT", "users_pkey"),
    Entry(12, "FK CONSTRAINT", "users_team_fk"),
]
SAMPLE_COUNTS = {
    "constraints": 1,
    "extensions": 1,
    "foreign_keys": 1,
    "functions": 1,
    "indexes": 1,
    "large_objects": 2,
    "schemas": 1,
    "sequences": 1,
    "table_data": 1,
    "tables": 1,
    "views": 1,
}

PLAIN_DUMP = """--
-- PostgreSQL database dump
--

\\restrict abc123

-- Dumped from database version 16.4 (Debian 16.4-1.pgdg120+2)
-- Dumped by pg_dump version 17.2 (Debian 17.2-1.pgdg120+1)

-- Started on 2024-01-02 03:04:05 UTC

SET statement_timeout = 0;

--
-- Name: users; Type: TABLE; Schema: public; Owner: app
--

CREATE TABLE public.users (id integer, note text);

--
-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: app
--

COPY public.users (id, note) FROM stdin;
1\tplain
-- Name: fake; Type: TABLE; Schema: public; Owner: app
\\connect looks like a meta-command but is data
\\.

--
-- Name: users_id_idx; Type: INDEX; Schema: public; Owner: app
--

CREATE INDEX users_id_idx ON public.users USING btree (id);

\\unrestrict abc123

--
-- PostgreSQL database dump complete
--
"""

GLOBALS = """--
-- PostgreSQL database cluster dump
--

SET default_transaction_read_only = off;

CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOLOGIN;
CREATE ROLE postgres;
"""

CLUSTER = (
    GLOBALS
    + """
--
-- Databases
--

--
-- Database "app" dump
--

\\connect app

"""
    + PLAIN_DUMP
)


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def refusal(path: Path) -> SeedError:
    with pytest.raises(SeedError) as caught:
        inspect_dump(path)
    assert str(path) in caught.value.message  # every refusal names the file
    return caught.value


# --- archives ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "compression", "expected"),
    [(12, -1, "gzip"), (13, 0, "none"), (14, 6, "gzip"), (15, 3, "zstd"), (16, 2, "lz4")],
)
def test_custom_header_and_toc_are_read_for_archive_versions_1_12_to_1_16(
    tmp_path: Path, minor: int, compression: int, expected: str
) -> None:
    path = write(
        tmp_path, "backup.bin", archive(SAMPLE_ENTRIES, minor=minor, compression=compression)
    )
    info = inspect_dump(path)
    assert info.format == "custom"
    assert info.archive_version == f"1.{minor}"
    assert info.compression == expected
    assert (info.server_version, info.server_major) == ("16.4", 16)
    assert info.pg_dump_version == "16.4"
    assert info.database == "app"
    assert info.created == datetime(2024, 1, 2, 3, 4, 5)
    assert info.counts == SAMPLE_COUNTS
    assert info.wrapped is None


def test_an_archive_newer_than_1_16_still_gives_its_versions(tmp_path: Path) -> None:
    data = archive(SAMPLE_ENTRIES, minor=17, server="19.0", pg_dump="19.0")
    info = inspect_dump(write(tmp_path, "future.dump", data))
    assert (info.archive_version, info.server_major, info.counts) == ("1.17", 19, {})
    assert "made by PostgreSQL 19" in newer_than_error(info, 17).message


def test_development_and_old_version_strings_are_parsed(tmp_path: Path) -> None:
    data = archive(SAMPLE_ENTRIES, server="9.6.24", pg_dump="18beta1")
    info = inspect_dump(write(tmp_path, "odd.dump", data))
    assert (info.server_version, info.server_major) == ("9.6.24", 9)
    assert (info.pg_dump_version, info.pg_dump_major, info.required_major) == ("18beta1", 18, 18)


def test_a_custom_archive_cut_in_its_header_is_truncated(tmp_path: Path) -> None:
    path = write(tmp_path, "cut.dump", archive(SAMPLE_ENTRIES)[:40])
    assert "is truncated" in refusal(path).message
    path = write(tmp_path, "tiny.dump", b"PGD")
    assert "is truncated" in refusal(path).message


def test_a_custom_archive_cut_mid_toc_says_which_entry(tmp_path: Path) -> None:
    whole = archive(SAMPLE_ENTRIES)
    error = refusal(write(tmp_path, "cut.dump", whole[: len(whole) // 2]))
    assert "is truncated" in error.message
    assert "table of contents (entry" in error.message


@pytest.mark.parametrize("offsets", [True, False], ids=["seekable", "piped"])
def test_a_custom_archive_cut_in_its_data_is_truncated(tmp_path: Path, offsets: bool) -> None:
    whole = archive(SAMPLE_ENTRIES, offsets=offsets)
    assert inspect_dump(write(tmp_path, "whole.dump", whole)).format == "custom"
    error = refusal(write(tmp_path, "cut.dump", whole[:-3]))
    assert "truncated" in error.message and "data" in error.message


def test_the_toc_dat_of_a_directory_dump_stands_for_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    entries = [Entry(4, "TABLE"), Entry(9, "TABLE DATA", data=b"", filename="9.dat")]
    write(folder, "toc.dat", archive(entries, fmt=3, compression=1))
    write(folder, "9.dat.gz", gzip.compress(b"1\n"))
    assert inspect_dump(folder).format == "directory"
    readable, info = open_dump(folder / "toc.dat", tmp_path / "work")
    assert (readable, info.format, info.path) == (folder, "directory", folder / "toc.dat")


def test_one_data_file_of_a_directory_dump_points_at_its_folder(tmp_path: Path) -> None:
    write(tmp_path, "toc.dat", archive([], fmt=3))
    error = refusal(write(tmp_path, "3571.dat.gz", gzip.compress(b"1\n")))
    assert "one data file of the directory-format dump" in error.message
    assert error.hint == f"give envctl the whole folder: {tmp_path}"


def test_a_directory_dump_missing_a_data_file_is_incomplete(tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    entries = [Entry(9, "TABLE DATA", data=b"", filename="9.dat")]
    write(folder, "toc.dat", archive(entries, fmt=3, compression=1))
    error = refusal(folder)
    assert "incomplete" in error.message and "9.dat.gz" in error.message


def test_a_folder_without_toc_dat_is_refused_and_a_nested_dump_is_suggested(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "download"
    (folder / "backup").mkdir(parents=True)
    write(folder / "backup", "toc.dat", archive([], fmt=3))
    write(folder, "notes.txt", "hello")
    error = refusal(folder)
    assert "without toc.dat" in error.message and "notes.txt" in error.message
    assert error.hint == f"did you mean {folder / 'backup'}?"


def test_a_data_directory_is_named_as_such(tmp_path: Path) -> None:
    write(tmp_path, "PG_VERSION", "17\n")
    assert "data directory" in refusal(tmp_path).message


# --- plain SQL -----------------------------------------------------------------------------------


def test_plain_dump_banner_gives_versions_counts_and_skips_copy_data(tmp_path: Path) -> None:
    info = inspect_dump(write(tmp_path, "backup.sql", PLAIN_DUMP))
    assert info.format == "plain"
    assert (info.server_version, info.server_major) == ("16.4", 16)
    assert (info.pg_dump_version, info.required_major) == ("17.2", 17)
    assert info.created == datetime(2024, 1, 2, 3, 4, 5)
    # the "-- Name: fake" line inside COPY data is data, not an object
    assert info.counts == {"indexes": 1, "table_data": 1, "tables": 1}
    assert info.compression is None and info.archive_version is None


def test_plain_dump_with_windows_line_ends_is_read(tmp_path: Path) -> None:
    info = inspect_dump(write(tmp_path, "crlf.sql", PLAIN_DUMP.replace("\n", "\r\n")))
    assert (info.format, info.server_major, info.counts.get("tables")) == ("plain", 16, 1)


def test_pg_dumpall_without_databases_is_globals_and_with_them_cluster(tmp_path: Path) -> None:
    globals_info = inspect_dump(write(tmp_path, "globals.sql", GLOBALS))
    assert (globals_info.format, globals_info.counts) == ("globals", {"roles": 2})
    assert globals_info.server_major is None
    cluster = inspect_dump(write(tmp_path, "all.sql", CLUSTER))
    assert (cluster.format, cluster.server_major, cluster.database) == ("cluster", 16, None)
    assert cluster.counts["databases"] == 1 and cluster.counts["roles"] == 2


def test_hand_written_sql_is_plain_with_its_create_statements_counted(tmp_path: Path) -> None:
    text = "-- schema\ncreate table t (id int);\nCREATE UNIQUE INDEX t_id ON t (id);\n"
    info = inspect_dump(write(tmp_path, "schema.sql", text))
    assert (info.format, info.server_version, info.pg_dump_version) == ("plain", None, None)
    assert info.counts == {"indexes": 1, "tables": 1}


def test_a_readme_is_refused_with_what_it_starts_with(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, "README.md", "# Shop backup\n\nRestore with care.\n"))
    assert "'# Shop backup'" in error.message


def test_prose_that_starts_like_sql_is_still_refused(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, "notes.txt", "Table of contents\n1. Intro\n"))
    assert "neither a PostgreSQL backup nor SQL" in error.message


def test_mysql_dumps_and_utf16_text_are_refused_by_name(tmp_path: Path) -> None:
    mysql = refusal(write(tmp_path, "m.sql", "-- MySQL dump 10.13  Distrib 8.0.36\n"))
    assert "MySQL" in mysql.message
    utf16 = refusal(write(tmp_path, "w.sql", PLAIN_DUMP.encode("utf-16")))
    assert "UTF-16" in utf16.message and utf16.hint and "iconv" in utf16.hint


def test_random_bytes_are_refused_with_their_first_bytes(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, "noise.bin", bytes(range(7, 256)) * 4))
    assert "binary data starting with 07 08 09" in error.message


def test_an_empty_file_and_a_missing_path_are_refused(tmp_path: Path) -> None:
    assert "is empty" in refusal(write(tmp_path, "empty.dump", b"")).message
    with pytest.raises(SeedError, match="does not exist"):
        inspect_dump(tmp_path / "nope.dump")


# --- wrappers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "compress"),
    [("gzip", gzip.compress), ("bzip2", bz2.compress), ("xz", lzma.compress)],
)
def test_compressed_plain_sql_is_read_and_unwrapped(
    tmp_path: Path, kind: str, compress: Callable[[bytes], bytes]
) -> None:
    path = write(tmp_path, "backup.sql.x", compress(PLAIN_DUMP.encode()))
    readable, info = open_dump(path, tmp_path / "work")
    assert (info.format, info.compression, info.wrapped) == ("plain", kind, kind)
    assert readable.read_bytes() == PLAIN_DUMP.encode()


def test_a_truncated_gzip_is_refused_as_truncated(tmp_path: Path) -> None:
    data = gzip.compress((PLAIN_DUMP * 200).encode(), mtime=0)
    error = refusal(write(tmp_path, "backup.sql.gz", data[: len(data) // 2]))
    assert "truncated" in error.message and "gzip" in error.message


def test_zstd_is_named_with_the_command_that_opens_it(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, "backup.zst", b"\x28\xb5\x2f\xfd" + bytes(64)))
    assert error.hint and "zstd -d" in error.hint


def test_a_tar_whose_only_member_is_the_dump_is_unwrapped_skipping_apple_double(
    tmp_path: Path,
) -> None:
    dump = archive(SAMPLE_ENTRIES)
    path = tmp_path / "backup.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in (("._shop.dump", b"\x00\x05\x16\x07" + bytes(60)), ("shop.dump", dump)):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    readable, info = open_dump(path, tmp_path / "work")
    assert info.format == "custom"
    assert info.wrapped == "tar member shop.dump (macOS resource files skipped)"
    assert readable.name == "shop.dump" and readable.read_bytes() == dump


def test_a_tar_of_several_files_is_refused_listing_them(tmp_path: Path) -> None:
    path = tmp_path / "many.tar"
    with tarfile.open(path, "w") as tar:
        for name in ("a.sql", "b.sql"):
            source = write(tmp_path, name, PLAIN_DUMP)
            tar.add(source, arcname=name)
    error = refusal(path)
    assert "2 files (a.sql, b.sql)" in error.message


def test_a_macos_zipped_directory_dump_is_unwrapped_into_the_workdir(tmp_path: Path) -> None:
    entries = [Entry(4, "TABLE"), Entry(9, "TABLE DATA", data=b"", filename="9.dat")]
    toc = archive(entries, fmt=3, compression=1)
    data = gzip.compress(b"1\n")
    path = tmp_path / "dump.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("dump/toc.dat", toc)
        zipped.writestr("dump/9.dat.gz", data)
        zipped.writestr("dump/.DS_Store", b"junk")
        zipped.writestr("__MACOSX/dump/._toc.dat", b"\x00\x05\x16\x07")
    readable, info = open_dump(path, tmp_path / "work")
    assert info.format == "directory"
    assert info.wrapped == "zip folder dump (macOS resource files skipped)"
    assert sorted(p.name for p in readable.iterdir()) == ["9.dat.gz", "toc.dat"]
    assert (readable / "toc.dat").read_bytes() == toc
    assert readable.is_relative_to(tmp_path / "work")


def test_a_truncated_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dump.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("dump.sql", PLAIN_DUMP)
    path.write_bytes(path.read_bytes()[:100])
    assert "damaged or truncated zip" in refusal(path).message


def test_a_custom_dump_inside_gzip_keeps_both_compressions(tmp_path: Path) -> None:
    path = write(tmp_path, "b.dump.gz", gzip.compress(archive(SAMPLE_ENTRIES, compression=1)))
    readable, info = open_dump(path, tmp_path / "work")
    assert (info.format, info.compression, info.wrapped) == ("custom", "gzip", "gzip")
    assert readable.name == "b.dump"


# --- messages ------------------------------------------------------------------------------------


def info_of(server: str | None, pg_dump: str | None, fmt: str = "custom") -> DumpInfo:
    major = int(server.split(".")[0]) if server else None
    return DumpInfo(
        path=Path("/backups/shop.dump"),
        format=fmt,  # type: ignore[arg-type]
        compression="gzip",
        server_version=server,
        server_major=major,
        pg_dump_version=pg_dump,
        archive_version="1.16",
        created=None,
        database="shop",
        counts={},
        wrapped=None,
    )


def test_newer_than_error_names_both_versions() -> None:
    error = newer_than_error(info_of("18.1", "18.1"), 16)
    assert "made by PostgreSQL 18" in error.message and "PostgreSQL 16" in error.message
    assert "/backups/shop.dump" in error.message
    assert error.hint and error.hint.startswith("use version 18 or auto")


def test_newer_than_error_blames_pg_dump_when_it_is_newer_than_the_server() -> None:
    error = newer_than_error(info_of("15.8", "17.2"), 15)
    assert "pg_dump 17 (from a PostgreSQL 15 server)" in error.message
    assert error.hint and "use version 17" in error.hint


def test_rewrite_tool_error_explains_an_unsupported_archive_version() -> None:
    output = "pg_restore: error: unsupported version (1.16) in file header\n"
    with_info = rewrite_tool_error(output, info_of("17.2", "17.2"))
    assert with_info and "made by PostgreSQL 17" in with_info and "1.16" in with_info
    without = rewrite_tool_error(output, None)
    assert without and "PostgreSQL 17" in without


def test_rewrite_tool_error_explains_settings_and_restrict_and_returns_none_otherwise() -> None:
    psql = 'psql:/tmp/x.sql:14: ERROR:  unrecognized configuration parameter "transaction_timeout"'
    message = rewrite_tool_error(psql, info_of("17.2", "17.2", "plain"))
    assert message and "transaction_timeout" in message and "PostgreSQL 17" in message
    restrict = rewrite_tool_error("psql:/tmp/x.sql:5: error: invalid command \\restrict", None)
    assert restrict and "\\restrict" in restrict
    assert rewrite_tool_error('ERROR:  relation "users" already exists', None) is None


def test_to_dict_is_json_ready(tmp_path: Path) -> None:
    info = inspect_dump(write(tmp_path, "b.dump", archive(SAMPLE_ENTRIES)))
    data = json.loads(json.dumps(info.to_dict()))
    assert data["created"] == "2024-01-02T03:04:05"
    assert data["counts"]["tables"] == 1 and data["path"] == str(tmp_path / "b.dump")
