"""pg_dump's archive (custom, tar and directory formats): its header and table of contents, read
the way pg_backup_archiver.c reads them (ReadHead, ReadToc), the walk over a custom archive's
data blocks that catches one cut short, and the DumpInfo an archive's header and TOC give.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from provisioner.errors import SeedError
from provisioner.postgres.dumpfile._io import _read_up_to
from provisioner.postgres.dumpfile.info import DumpFormat, DumpInfo, _major, _version_token
from provisioner.postgres.dumpfile.wrappers import _describe, _Layer, _Source

_MAGIC = b"PGDMP"
# pg_dump -Fd writes "tar" (3) into its toc.dat on purpose: the folder, not the code, tells them
# apart, and a tar file is a pg_dump tar archive when it also holds pg_dump's restore.sql.
_ARCHIVE_FORMATS = {1: "custom", 3: "tar", 5: "directory"}
_TOC_FORMATS = ("tar", "directory")
_COMPRESSIONS = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}


_OLDEST_READ = (1, 10)
_NEWEST_KNOWN = (1, 16)
# The first PostgreSQL release whose pg_dump writes (and pg_restore reads) each archive version.
ARCHIVE_RELEASES = {
    (1, 10): "8.1",
    (1, 11): "8.4",
    (1, 12): "9.5",
    (1, 13): "10.3",
    (1, 14): "12",
    (1, 15): "16",
    (1, 16): "17",
}
# Data offsets in custom archives (pg_backup_archiver.h)
_OFFSET_NOT_SET, _OFFSET_SET, _OFFSET_NO_DATA = 1, 2, 3
_BLOCK_DATA, _BLOCK_BLOBS = 1, 3
# Walking a custom archive's data blocks costs one seek per chunk; past this many, trust the rest.
_BLOCK_WALK_BUDGET = 200_000


_COUNT_NAMES = {
    "SCHEMA": "schemas",
    "EXTENSION": "extensions",
    "TABLE": "tables",
    "FOREIGN TABLE": "foreign_tables",
    "VIEW": "views",
    "MATERIALIZED VIEW": "materialized_views",
    "SEQUENCE": "sequences",
    "INDEX": "indexes",
    "CONSTRAINT": "constraints",
    "CHECK CONSTRAINT": "constraints",
    "FK CONSTRAINT": "foreign_keys",
    "FUNCTION": "functions",
    "PROCEDURE": "functions",
    "AGGREGATE": "functions",
    "TRIGGER": "triggers",
    "EVENT TRIGGER": "triggers",
    "TYPE": "types",
    "DOMAIN": "types",
    "POLICY": "policies",
    "TABLE DATA": "table_data",
}


@dataclass(frozen=True)
class _Header:
    version: tuple[int, int, int]
    int_size: int
    offset_size: int
    format: str
    compression: str
    created: datetime | None
    database: str | None
    server_version: str | None
    pg_dump_version: str | None


@dataclass(frozen=True)
class _TocEntry:
    dump_id: int
    had_dumper: bool
    desc: str
    large_objects: int
    data_state: int = 0  # custom: _OFFSET_*
    data_offset: int = 0
    filename: str | None = None  # tar, directory
    tag: str = ""  # the object's name (kept for EXTENSION entries)


class _Reader:
    """ReadByte/ReadInt/ReadStr/ReadOffset over a stream; running out of bytes is truncation."""

    def __init__(self, stream: IO[bytes], where: str) -> None:
        self.stream = stream
        self.where = where
        self.int_size = 4
        self.offset_size = 8
        self.version = (1, 0, 0)
        self.part = "header"

    def read(self, size: int) -> bytes:
        data = _read_up_to(self.stream, size)
        if len(data) < size:
            raise SeedError(
                f"{self.where} is truncated: the archive ends inside its {self.part}",
                hint="copy or download it again; it is shorter than pg_dump wrote it",
            )
        return data

    def read_byte(self) -> int:
        return self.read(1)[0]

    def read_int(self) -> int:
        # sign byte, then int_size bytes of magnitude, least significant first
        negative = self.read_byte() if self.version > (1, 0, 0) else 0
        value = int.from_bytes(self.read(self.int_size), "little")
        return -value if negative else value

    def read_str(self) -> str | None:
        length = self.read_int()
        if length < 0:
            return None
        return self.read(length).decode("utf-8", errors="replace")

    def read_offset(self) -> tuple[int, int]:
        flag = self.read_byte()
        return flag, int.from_bytes(self.read(self.offset_size), "little")

    def damaged(self, detail: str) -> SeedError:
        return SeedError(
            f"{self.where} is damaged: {detail} in its {self.part}",
            hint="copy or download it again",
        )


def _read_toc_dat(src: _Source, where: str) -> tuple[_Header, list[_TocEntry] | None]:
    with src.open() as stream:
        return _read_archive(stream, where)


def _read_archive(stream: IO[bytes], where: str) -> tuple[_Header, list[_TocEntry] | None]:
    reader = _Reader(stream, where)
    if reader.read(5) != _MAGIC:
        raise reader.damaged("no PGDMP magic")
    header = _read_header(reader)
    if header.version[:2] > _NEWEST_KNOWN:
        return header, None  # the TOC layout may have changed; the header is what matters
    return header, _read_entries(reader, header)


def _read_header(reader: _Reader) -> _Header:
    major, minor = reader.read_byte(), reader.read_byte()
    revision = reader.read_byte() if (major, minor) > (1, 0) else 0
    reader.version = (major, minor, revision)
    if major != 1 or (major, minor) < _OLDEST_READ:
        raise SeedError(
            f"{reader.where} is a pg_dump archive of version {major}.{minor}, which envctl "
            "cannot read (it reads 1.10, PostgreSQL 8.1, and newer)",
            hint="restore it with a PostgreSQL of its time and dump it again with a current one",
        )
    reader.int_size = reader.read_byte()
    if not 1 <= reader.int_size <= 32:
        raise reader.damaged(f"integer size {reader.int_size}")
    reader.offset_size = reader.read_byte()
    code = reader.read_byte()
    if code not in _ARCHIVE_FORMATS:
        raise reader.damaged(f"unknown archive format code {code}")
    if (major, minor) >= (1, 15):
        algorithm = reader.read_byte()
        if algorithm not in _COMPRESSIONS:
            raise reader.damaged(f"unknown compression algorithm {algorithm}")
        compression = _COMPRESSIONS[algorithm]
    else:
        compression = "gzip" if reader.read_int() != 0 else "none"
    fields = [reader.read_int() for _ in range(7)]  # sec, min, hour, mday, mon, year, isdst
    database = reader.read_str()
    server_version = reader.read_str()
    pg_dump_version = reader.read_str()
    return _Header(
        version=reader.version,
        int_size=reader.int_size,
        offset_size=reader.offset_size,
        format=_ARCHIVE_FORMATS[code],
        compression=compression,
        created=_struct_tm(fields),
        database=database,
        server_version=server_version,
        pg_dump_version=pg_dump_version,
    )


def _struct_tm(fields: list[int]) -> datetime | None:
    second, minute, hour, day, month, year = fields[:6]
    try:
        return datetime(year + 1900, month + 1, day, hour, minute, min(second, 59))
    except ValueError:
        return None


def _read_entries(reader: _Reader, header: _Header) -> list[_TocEntry]:
    version = header.version
    reader.part = "table of contents"
    count = reader.read_int()
    if not 0 <= count <= 100_000_000:
        raise reader.damaged(f"an entry count of {count}")
    entries = []
    for number in range(1, count + 1):
        reader.part = f"table of contents (entry {number} of {count})"
        dump_id = reader.read_int()
        if dump_id <= 0:
            raise reader.damaged(f"entry ID {dump_id}")
        had_dumper = reader.read_int() != 0
        reader.read_str()  # catalog table OID
        reader.read_str()  # OID
        tag = reader.read_str() or ""
        desc = reader.read_str() or ""
        if version >= (1, 11, 0):
            reader.read_int()  # section
        definition = reader.read_str() or ""
        reader.read_str()  # drop statement
        reader.read_str()  # copy statement
        reader.read_str()  # namespace
        reader.read_str()  # tablespace
        if version >= (1, 14, 0):
            reader.read_str()  # table access method
        if version >= (1, 16, 0):
            reader.read_int()  # relkind
        reader.read_str()  # owner
        reader.read_str()  # "with oids", always "false" since PostgreSQL 12
        while reader.read_str() is not None:  # dependencies, ended by a NULL string
            pass
        state, offset, filename = 0, 0, None
        if header.format == "custom":
            state, offset = reader.read_offset()
        else:
            filename = reader.read_str()
        large_objects = 0
        if desc in ("BLOB", "BLOB METADATA"):
            large_objects = max(definition.count("lo_create("), 1)
        entries.append(
            _TocEntry(
                dump_id,
                had_dumper,
                desc,
                large_objects,
                state,
                offset,
                filename,
                tag if desc == "EXTENSION" else "",
            )
        )
    return entries


def _check_custom_data(
    stream: IO[bytes], header: _Header, entries: list[_TocEntry], where: str
) -> None:
    """Walk the data blocks after the TOC: a custom dump cut short in its data is caught here."""
    size = stream.seek(0, io.SEEK_END)
    with_data = [e for e in entries if e.data_state in (_OFFSET_SET, _OFFSET_NOT_SET)]
    if not with_data:
        return
    reader = _Reader(stream, where)
    reader.version, reader.int_size = header.version, header.int_size
    reader.part = "data"
    budget = [_BLOCK_WALK_BUDGET]
    positioned = [e for e in with_data if e.data_state == _OFFSET_SET]
    if len(positioned) == len(with_data):
        for entry in positioned:
            if entry.data_offset >= size:
                raise _truncated_data(where)
            stream.seek(entry.data_offset)
            kind, dump_id = reader.read_byte(), reader.read_int()
            if kind not in (_BLOCK_DATA, _BLOCK_BLOBS) or dump_id != entry.dump_id:
                raise reader.damaged(f"no data block for entry {entry.dump_id} at its offset")
        last = max(positioned, key=lambda e: e.data_offset)
        stream.seek(last.data_offset)
        if not _skip_block(reader, stream, size, budget):
            _check_tail(reader, stream, size)
        return
    # written to a pipe: no offsets, the blocks follow the TOC in order
    stream.seek(0)
    _read_archive(stream, where)
    for _ in with_data:
        if not _skip_block(reader, stream, size, budget):
            _check_tail(reader, stream, size)
            return


def _check_tail(reader: _Reader, stream: IO[bytes], size: int) -> None:
    # Every data block ends with a zero-length chunk (and a BLOBS block with OID 0 after it), so
    # a whole archive ends with a zero int; a cut one almost never does.
    width = reader.int_size + 1
    stream.seek(max(size - width, 0))
    if stream.read(width) != bytes(width):
        raise _truncated_data(reader.where)


def _skip_block(reader: _Reader, stream: IO[bytes], size: int, budget: list[int]) -> bool:
    """Skip one data block; False when the walk budget ran out (the rest is trusted)."""
    kind = reader.read_byte()
    reader.read_int()  # dump ID
    if kind == _BLOCK_DATA:
        return _skip_chunks(reader, stream, size, budget)
    if kind != _BLOCK_BLOBS:
        raise reader.damaged(f"a data block of unknown type {kind}")
    while reader.read_int() != 0:  # a large object's OID; 0 ends the block
        if not _skip_chunks(reader, stream, size, budget):
            return False
    return True


def _skip_chunks(reader: _Reader, stream: IO[bytes], size: int, budget: list[int]) -> bool:
    while (length := reader.read_int()) != 0:
        if length < 0:
            raise reader.damaged(f"a data chunk of length {length}")
        if stream.seek(length, io.SEEK_CUR) > size:
            raise _truncated_data(reader.where)
        budget[0] -= 1
        if budget[0] <= 0:
            return False
    return True


def _truncated_data(where: str) -> SeedError:
    return SeedError(
        f"{where} is truncated: the archive ends inside its data",
        hint="copy or download it again; it is shorter than pg_dump wrote it",
    )


def _info(
    origin: Path,
    fmt: DumpFormat,
    layers: tuple[_Layer, ...],
    header: _Header,
    entries: list[_TocEntry] | None,
) -> DumpInfo:
    counts: Counter[str] = Counter()
    for entry in entries or ():
        name = _COUNT_NAMES.get(entry.desc)
        if name:
            counts[name] += 1
        counts["large_objects"] += entry.large_objects
    server_version = _version_token(header.server_version)
    return DumpInfo(
        path=origin,
        format=fmt,
        compression=header.compression,
        server_version=server_version,
        server_major=_major(server_version),
        pg_dump_version=_version_token(header.pg_dump_version),
        archive_version=f"{header.version[0]}.{header.version[1]}",
        created=header.created,
        database=header.database,
        counts={name: n for name, n in sorted(counts.items()) if n},
        wrapped=_describe(layers),
        extensions=tuple(entry.tag for entry in entries or () if entry.desc == "EXTENSION"),
    )
