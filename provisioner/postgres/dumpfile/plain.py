"""Plain SQL: pg_dump and pg_dumpall output, or hand-written SQL. One pass over the text reads
its banner, versions and TOC comments (or counts CREATE statements), skips COPY data, and tells
a truncated pg_dump file or text that is no SQL at all from a backup.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from provisioner.errors import SeedError
from provisioner.postgres.dumpfile._io import _CHUNK
from provisioner.postgres.dumpfile.archive import _COUNT_NAMES
from provisioner.postgres.dumpfile.info import (
    SUPPORTED_HINT,
    DumpFormat,
    DumpInfo,
    _major,
    _version_token,
)
from provisioner.postgres.dumpfile.wrappers import _describe, _Source

# Hand-written SQL has no TOC comments: count its CREATE statements instead.
_CREATE_NAMES = {
    b"TABLE": "tables",
    b"VIEW": "views",
    b"MATERIALIZED VIEW": "materialized_views",
    b"INDEX": "indexes",
    b"UNIQUE INDEX": "indexes",
    b"FUNCTION": "functions",
    b"PROCEDURE": "functions",
    b"SEQUENCE": "sequences",
    b"SCHEMA": "schemas",
    b"EXTENSION": "extensions",
    b"TRIGGER": "triggers",
    b"TYPE": "types",
    b"DOMAIN": "types",
}


_BANNER = re.compile(r"^-- PostgreSQL database (cluster )?dump\s*$", re.M)
_PG_DUMP_LINE = re.compile(r"^-- Dumped by pg_dump version ", re.M)
_SQL_START = re.compile(
    r"(?:ABORT|ALTER|ANALY[SZ]E|BEGIN|CALL|CHECKPOINT|CLOSE|CLUSTER|COMMENT|COMMIT|COPY|CREATE|"
    r"DEALLOCATE|DECLARE|DELETE|DISCARD|DO|DROP|END|EXECUTE|EXPLAIN|GRANT|IMPORT|INSERT|LISTEN|"
    r"LOCK|MERGE|NOTIFY|PREPARE|REASSIGN|REFRESH|REINDEX|RELEASE|RESET|REVOKE|ROLLBACK|"
    r"SAVEPOINT|SECURITY|SELECT|SET|SHOW|START|TABLE|TRUNCATE|UPDATE|VACUUM|VALUES|WITH)\b"
    r"|\(",
    re.I,
)
# Lines that matter, each preceded by a newline: a sentinel one is put before the first line.
_PLAIN_LINE = re.compile(
    rb"\n(?:"
    rb"-- (?:Data for )?Name: [^\n]*?; Type: (?P<toc>[^;\r\n]+);"
    rb"|-- Dumped from database version (?P<server>[^\r\n]+)"
    rb"|-- Dumped by pg_dump version (?P<pg_dump>[^\r\n]+)"
    rb"|-- Started on (?P<started>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
    rb'|-- Database "(?P<section>[^\r\n]*)" dump'
    rb"|-- PostgreSQL database (?:(?P<cluster_done>cluster )|(?P<database_done>))dump complete"
    rb"|(?P<connect>\\connect\s)"
    rb"|(?P<copy>COPY [^\n]* FROM stdin;)"
    rb"|(?P<lo>SELECT pg_catalog\.lo_create\()"
    rb"|(?P<role>CREATE ROLE\s)"
    rb"|CREATE (?P<database>DATABASE\s)"
    rb'|CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<extension>"[^"\n]+"|[\w$]+)'
    rb"|CREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:UNLOGGED|TEMP|TEMPORARY|TRUSTED)\s+)*"
    rb"(?P<create>TABLE|VIEW|MATERIALIZED\s+VIEW|UNIQUE\s+INDEX|INDEX|FUNCTION|PROCEDURE|"
    rb"SEQUENCE|SCHEMA|EXTENSION|TRIGGER|TYPE|DOMAIN)\s"
    # Hand-written foreign keys: every one has one REFERENCES, inline or in a constraint.
    rb"|(?P<foreign_key>(?!\s*(?:--|GRANT\b|REVOKE\b|INSERT\b|COPY\b))[^\n]*?\bREFERENCES\b)"
    rb")",
    re.I,
)
_COPY_END = re.compile(rb"\n\\\.\r?\n")


@dataclass
class _PlainScan:
    server_version: str | None = None
    pg_dump_version: str | None = None
    started: datetime | None = None
    database: str | None = None
    connects: bool = False
    database_complete: bool = False  # "-- PostgreSQL database dump complete": pg_dump's last line
    cluster_complete: bool = False  # "-- PostgreSQL database cluster dump complete": pg_dumpall's
    toc: Counter[str] = field(default_factory=Counter)
    created: Counter[str] = field(default_factory=Counter)
    extensions: list[str] = field(default_factory=list)

    def take(self, match: re.Match[bytes]) -> None:
        group = match.lastgroup
        value = match.group(group or 0).decode("utf-8", errors="replace").strip()
        if group == "toc":
            name = _COUNT_NAMES.get(value)
            if name:
                self.toc[name] += 1
            if value == "DATABASE" and self.database is None:
                self.database = _toc_name(match.group(0))
        elif group == "server" and self.server_version is None:
            self.server_version = value
        elif group == "pg_dump" and self.pg_dump_version is None:
            self.pg_dump_version = value
        elif group == "started" and self.started is None:
            with contextlib.suppress(ValueError):
                self.started = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
        elif group == "section":
            self.created["databases"] += 1
        elif group == "cluster_done":
            self.cluster_complete = True
        elif group == "database_done":
            self.database_complete = True
        elif group == "connect":
            self.connects = True
        elif group == "lo":
            self.toc["large_objects"] += 1
            self.created["large_objects"] += 1
        elif group == "role":
            self.created["roles"] += 1
        elif group == "database":
            self.connects = True
        elif group == "extension":
            self.created["extensions"] += 1
            name = value[1:-1] if value.startswith('"') else value
            if name not in self.extensions:
                self.extensions.append(name)
        elif group == "foreign_key":
            self.created["foreign_keys"] += 1
        elif group == "create":
            kind = re.sub(rb"\s+", b" ", match.group(group).upper())
            self.created[_CREATE_NAMES.get(kind, "other")] += 1


def _toc_name(line: bytes) -> str:
    text = line.decode("utf-8", errors="replace")
    name = text.split("Name: ", 1)[1].split("; Type: ", 1)[0]
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _inspect_text(src: _Source, head: bytes) -> DumpInfo:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff").replace("\r\n", "\n")
    banner = _BANNER.search(text)
    from_pg_dump = banner is not None or _PG_DUMP_LINE.search(text) is not None
    if not from_pg_dump:
        _refuse_foreign_text(src, text)
    with src.open() as stream:
        scan = _scan_plain(stream)
    if banner is not None and banner.group(1):
        fmt: DumpFormat = "cluster" if scan.connects else "globals"
    else:
        fmt = "plain"
    counts = scan.toc if scan.toc else scan.created
    if fmt != "plain":
        counts = Counter(scan.toc)
        counts.update({k: scan.created[k] for k in ("roles", "databases") if scan.created[k]})
    compressors = [layer.kind for layer in src.layers if layer.kind in ("gzip", "bzip2", "xz")]
    server_version = _version_token(scan.server_version)
    complete = None
    if fmt == "plain" and from_pg_dump:
        complete = scan.database_complete
    elif fmt != "plain":
        complete = scan.cluster_complete
    return DumpInfo(
        path=src.origin,
        format=fmt,
        compression=compressors[-1] if compressors else None,
        server_version=server_version,
        server_major=_major(server_version),
        pg_dump_version=_version_token(scan.pg_dump_version),
        archive_version=None,
        created=scan.started,
        database=scan.database if fmt == "plain" else None,
        counts={name: n for name, n in sorted(counts.items()) if n},
        wrapped=_describe(src.layers),
        complete=complete,
        extensions=tuple(scan.extensions),
    )


def truncated_error(info: DumpInfo) -> SeedError:
    """The error for a plain dump whose closing "dump complete" line is missing: psql would
    restore what is there with exit 0, and the data would be silently partial."""
    tool = "pg_dumpall" if info.format in ("cluster", "globals") else "pg_dump"
    return SeedError(
        f"{info.path} is truncated: a {tool} file ends with '-- PostgreSQL database "
        f"{'cluster ' if tool == 'pg_dumpall' else ''}dump complete', and this one stops before "
        "it (an interrupted dump, copy or download); restoring it would give partial data",
        hint=f"make the backup again (or copy it again); envctl inspect {info.path.name} shows "
        "what it holds",
    )


_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _refuse_foreign_text(src: _Source, text: str) -> None:
    """Hand-written SQL is fine (seed files are SQL too); other text is not a backup."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if first.startswith(("-- MySQL dump", "-- MariaDB dump", "/*!")):
        raise SeedError(
            f"{src.name} is a MySQL/MariaDB dump, not a PostgreSQL backup",
            hint="convert it (e.g. with pgloader) or dump the data from PostgreSQL",
        )
    if first.upper().startswith("PRAGMA "):
        raise SeedError(
            f"{src.name} is an SQLite dump (it starts with {first[:40]!r}), not a PostgreSQL "
            "backup",
            hint="convert it (e.g. with pgloader) or dump the data from PostgreSQL",
        )
    # Comments are no statement: a `/* ... */` banner (chinook's) may hold any text; one not
    # closed within the head runs past it, and then no statement is seen here.
    code = _BLOCK_COMMENT.sub(" ", text.lstrip("\ufeff"))
    code = code.split("/*", 1)[0]
    statements = [
        line.strip()
        for line in code.splitlines()
        if line.strip() and not line.strip().startswith("--")
    ]
    # a statement keyword first and a semicolon somewhere: "Table of contents" is no SQL
    if not statements or statements[0].startswith("\\"):
        return
    if _SQL_START.match(statements[0]) and ";" in text:
        return
    shown = statements[0][:60] + ("..." if len(statements[0]) > 60 else "")
    raise SeedError(
        f"{src.name} is neither a PostgreSQL backup nor SQL: it is text starting with {shown!r}",
        hint=SUPPORTED_HINT,
    )


def _scan_plain(stream: IO[bytes]) -> _PlainScan:
    """One pass over the SQL at C speed; COPY data is skipped, not searched."""
    scan = _PlainScan()
    buffer, start, in_copy = b"\n", 0, False
    while True:
        chunk = stream.read(_CHUNK)
        buffer = buffer[start:] + chunk
        start = 0
        limit = len(buffer) if not chunk else buffer.rfind(b"\n") + 1
        while True:
            if in_copy:
                end = _COPY_END.search(buffer, max(start - 1, 0), limit)
                if end is None:
                    start = max(limit - 1, start)  # keep the newline a terminator needs
                    break
                start, in_copy = end.end() - 1, False
                continue
            match = _PLAIN_LINE.search(buffer, start, limit)
            if match is None:
                start = max(limit - 1, start)
                break
            scan.take(match)
            in_copy = match.lastgroup == "copy"
            start = match.end()
            if not in_copy:
                newline = buffer.find(b"\n", start, limit)
                start = newline if newline >= 0 else limit
        if not chunk:
            return scan
