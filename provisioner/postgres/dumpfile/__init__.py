"""Reading backups without Postgres tools: what a file is, which versions made it, what it holds.

The format is found from the content, never from the file name: custom archives start with
`PGDMP`, tar archives are ustar files with a `toc.dat` member, directory archives are folders with
a `toc.dat`, and plain SQL is recognised by pg_dump's or pg_dumpall's banner. Backups that were
compressed (gzip, bzip2, xz), tarred or zipped around the real dump are looked into, and
`open_dump` unwraps them into a work folder for pg_restore or psql. The archive header and table
of contents are read the way PostgreSQL's pg_backup_archiver.c reads them (ReadHead, ReadToc),
for archive versions 1.10 to 1.16 (PostgreSQL 8.1 to 18); newer versions get their header read
and no counts.

Its modules: `inspect` finds what a file is and looks through its wrappers (`wrappers`: gzip,
bzip2, xz, tar, zip) to the dump, read by `archive` (custom archives, any archive's header and
TOC), `folder` (directory dumps) or `plain` (SQL); `info` holds the DumpInfo they answer with.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from provisioner.errors import SeedError
from provisioner.postgres.dumpfile.archive import ARCHIVE_RELEASES
from provisioner.postgres.dumpfile.info import DumpInfo
from provisioner.postgres.dumpfile.inspect import _inspect
from provisioner.postgres.dumpfile.plain import truncated_error

__all__ = [
    "DumpInfo",
    "inspect_dump",
    "newer_than_error",
    "open_dump",
    "rewrite_tool_error",
    "truncated_error",
]


def inspect_dump(path: Path) -> DumpInfo:
    """Detect a backup's format from its content and read its header; SeedError if it is none."""
    return _inspect(path)[0]


def open_dump(path: Path, workdir: Path) -> tuple[Path, DumpInfo]:
    """The path pg_restore or psql can read directly (unwrapped into `workdir` if needed), and
    the backup's info."""
    info, layers = _inspect(path)
    if not layers:
        if path.is_file() and info.format == "directory":
            return path.parent, info  # the user named the toc.dat of a directory dump
        return path, info
    workdir.mkdir(parents=True, exist_ok=True)
    readable = path
    for layer in layers:
        readable = layer.extract(readable, Path(tempfile.mkdtemp(prefix="unwrap-", dir=workdir)))
    if info.format == "custom":
        _inspect(readable)  # its data blocks can be checked now that it is a seekable file
    return readable, info


def newer_than_error(info: DumpInfo, major: int) -> SeedError:
    """The error for restoring `info` into PostgreSQL `major`, which is too old for it."""
    needed = info.required_major
    made = f"PostgreSQL {needed}" if needed is not None else "a newer PostgreSQL"
    server, dumper = info.server_major, info.pg_dump_major
    if server is not None and dumper is not None and dumper > server:
        made = f"pg_dump {dumper} (from a PostgreSQL {server} server)"
    return SeedError(
        f"{info.path}: this backup was made by {made}; PostgreSQL {major} cannot restore it",
        hint=f"use version {needed or 'auto'} or auto (a backup restores into its own major "
        "or a newer one)",
    )


_TOOL_UNSUPPORTED = re.compile(r"unsupported version \((\d+)\.(\d+)\) in file header")
_TOOL_PARAMETER = re.compile(r'unrecognized configuration parameter "([^"]+)"')
_TOOL_TRUNCATED = re.compile(
    r"could not read from input file: end of file|unexpected end of file|"
    r"input file is too short|could not read input file: end of file"
)


def rewrite_tool_error(output: str, info: DumpInfo | None) -> str | None:
    """Turn pg_restore's and psql's cryptic failures into what they mean; None if not recognised."""
    name = str(info.path) if info else "the backup"
    unsupported = _TOOL_UNSUPPORTED.search(output)
    if unsupported:
        version = (int(unsupported.group(1)), int(unsupported.group(2)))
        needed = info.required_major if info else None
        release = str(needed) if needed else ARCHIVE_RELEASES.get(version)
        made = f"PostgreSQL {release}" if release else "a PostgreSQL newer than 17"
        return (
            f"{name}: this backup was made by {made} (archive format {version[0]}.{version[1]}), "
            f"newer than the pg_restore that read it; use version {release or 'auto'} or auto"
        )
    parameter = _TOOL_PARAMETER.search(output)
    if parameter:
        needed = info.required_major if info else None
        made = f"PostgreSQL {needed}" if needed else "a newer PostgreSQL"
        return (
            f"{name}: this backup was made by {made}: it sets {parameter.group(1)}, which this "
            f"server does not know; use version {needed or 'auto'} or auto"
        )
    if "invalid command \\restrict" in output:
        return (
            f"{name} starts with \\restrict, which pg_dump writes since 17.6/16.10/15.14/14.19/"
            "13.22 (August 2025) and older psql releases reject; restore it with a current minor "
            "release of the same or a newer major"
        )
    if "input file appears to be a text format dump" in output:
        return f"{name} is plain SQL, which pg_restore cannot read: it is restored with psql"
    if "did not find magic string in file header" in output or (
        "input file does not appear to be a valid archive" in output
    ):
        return f"{name} is not a pg_dump archive (custom, tar or directory format)"
    if _TOOL_TRUNCATED.search(output):
        return f"{name} is truncated: it ends before its data does; copy or download it again"
    return None
