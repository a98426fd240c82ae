"""Reading backups without Postgres tools: what a file is, which versions made it, what it holds.

The format is found from the content, never from the file name: custom archives start with
`PGDMP`, tar archives are ustar files with a `toc.dat` member, directory archives are folders with
a `toc.dat`, and plain SQL is recognised by pg_dump's or pg_dumpall's banner. Backups that were
compressed (gzip, bzip2, xz), tarred or zipped around the real dump are looked into, and
`open_dump` unwraps them into a work folder for pg_restore or psql. The archive header and table
of contents are read the way PostgreSQL's pg_backup_archiver.c reads them (ReadHead, ReadToc),
for archive versions 1.10 to 1.16 (PostgreSQL 8.1 to 18); newer versions get their header read
and no counts.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import posixpath
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Literal, Protocol

from provisioner.errors import SeedError

DumpFormat = Literal["plain", "custom", "tar", "directory", "globals", "cluster"]

SUPPORTED_HINT = (
    "envctl reads what pg_dump writes (plain SQL, -Fc custom, -Ft tar, -Fd directory) and "
    "pg_dumpall output, also gzip/bzip2/xz-compressed, tarred or zipped"
)

_HEAD_SIZE = 8192
_CHUNK = 1 << 20
_MAGIC = b"PGDMP"
# pg_dump -Fd writes "tar" (3) into its toc.dat on purpose: the folder, not the code, tells them
# apart, and a tar file is a pg_dump tar archive when it also holds pg_dump's restore.sql.
_ARCHIVE_FORMATS = {1: "custom", 3: "tar", 5: "directory"}
_TOC_FORMATS = ("tar", "directory")
_COMPRESSIONS = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}
_DATA_SUFFIXES = ("", ".gz", ".lz4", ".zst")
Compressor = Literal["gzip", "bzip2", "xz"]
_COMPRESSORS: dict[str, Compressor] = {"gzip": "gzip", "bzip2": "bzip2", "xz": "xz"}
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
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
# The other files pg_dump -Fd writes next to its toc.dat
_DATA_FILE = re.compile(r"^(?:\d+\.dat|blob_\d+\.dat|blobs(?:_\d+)?\.toc)(?:\.gz|\.lz4|\.zst)?$")


@dataclass(frozen=True)
class DumpInfo:
    """What a backup is, read from its own bytes."""

    path: Path  # what the user gave
    format: DumpFormat
    compression: str | None  # whole-file wrapper ("gzip") or archive-internal ("gzip", "none", ...)
    server_version: str | None  # "17.2": the server that was dumped
    server_major: int | None
    pg_dump_version: str | None
    archive_version: str | None  # "1.16" for custom/tar/directory
    created: datetime | None  # the dumping machine's local time: archives store no time zone
    database: str | None
    counts: dict[str, int] = field(default_factory=dict)  # only kinds that occur
    wrapped: str | None = None  # how it was unwrapped: "gzip", "tar member NAME", ...
    # plain/cluster by pg_dump(all): whether its closing "dump complete" line is there
    complete: bool | None = None
    extensions: tuple[str, ...] = ()  # what its CREATE EXTENSION statements create

    @property
    def pg_dump_major(self) -> int | None:
        """The major version of the pg_dump that wrote it."""
        return _major(self.pg_dump_version)

    @property
    def required_major(self) -> int | None:
        """The oldest major that can restore it: pg_restore reads no archive newer than itself,
        and a newer pg_dump writes SQL (SET transaction_timeout, ...) older servers reject."""
        majors = [m for m in (self.server_major, self.pg_dump_major) if m is not None]
        return max(majors) if majors else None

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly fields, for `envctl inspect --json`."""
        return {
            "path": str(self.path),
            "format": self.format,
            "compression": self.compression,
            "server_version": self.server_version,
            "server_major": self.server_major,
            "pg_dump_version": self.pg_dump_version,
            "archive_version": self.archive_version,
            "created": self.created.isoformat() if self.created else None,
            "database": self.database,
            "counts": dict(self.counts),
            "wrapped": self.wrapped,
            "complete": self.complete,
            "extensions": list(self.extensions),
        }


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


# --- locating the dump inside its wrappers ---------------------------------------------------

Opener = Callable[[], contextlib.AbstractContextManager[IO[bytes]]]


@dataclass(frozen=True)
class _Layer:
    """One wrapper around the real dump, and how to take it off on disk."""

    kind: Literal["gzip", "bzip2", "xz", "tar", "zip"]
    member: str = ""  # tar/zip: the member file, or the folder that holds toc.dat
    folder: bool = False
    skipped_junk: bool = False

    def describe(self) -> str:
        if self.kind not in ("tar", "zip"):
            return self.kind
        what = f"folder {self.member or '.'}" if self.folder else f"member {self.member}"
        junk = " (macOS resource files skipped)" if self.skipped_junk else ""
        return f"{self.kind} {what}{junk}"

    def extract(self, source: Path, into: Path) -> Path:
        if self.kind in ("gzip", "bzip2", "xz"):
            target = into / _decompressed_name(source.name, self.kind)
            with source.open("rb") as raw, _decompressing(raw, self.kind, str(source)) as data:
                _copy_to(data, target)
            return target
        if self.kind == "tar":
            return self._extract_tar(source, into)
        return self._extract_zip(source, into)

    def _extract_tar(self, source: Path, into: Path) -> Path:
        with tarfile.open(source, "r:") as archive:
            if not self.folder:
                target = into / posixpath.basename(self.member)
                data = archive.extractfile(self.member)
                if data is None:
                    raise SeedError(f"{source}: tar member {self.member} is not a file")
                with data:
                    _copy_to(data, target)
                return target
            folder = into / (posixpath.basename(self.member) or Path(source.name).stem or "dump")
            folder.mkdir()
            for member in archive:
                name = _clean_name(member.name)
                if member.isfile() and _in_folder(name, self.member):
                    data = archive.extractfile(member)
                    if data is not None:
                        with data:
                            _copy_to(data, folder / posixpath.basename(name))
            return folder

    def _extract_zip(self, source: Path, into: Path) -> Path:
        with zipfile.ZipFile(source) as archive:
            if not self.folder:
                target = into / posixpath.basename(self.member)
                with archive.open(self.member) as data:
                    _copy_to(data, target)
                return target
            folder = into / (posixpath.basename(self.member) or Path(source.name).stem or "dump")
            folder.mkdir()
            for entry in archive.infolist():
                name = _clean_name(entry.filename)
                if not entry.is_dir() and _in_folder(name, self.member):
                    with archive.open(entry) as data:
                        _copy_to(data, folder / posixpath.basename(name))
            return folder


@dataclass(frozen=True)
class _Source:
    """Bytes to look at: a file on disk, or a stream inside wrappers of one."""

    open: Opener
    origin: Path  # what the user gave, for messages
    file: Path | None = None  # set when the bytes are a file on disk (seekable)
    layers: tuple[_Layer, ...] = ()

    @property
    def name(self) -> str:
        inside = " > ".join(layer.describe() for layer in self.layers)
        return f"{self.origin} ({inside})" if inside else str(self.origin)

    def inside(self, layer: _Layer, opener: Opener) -> _Source:
        return _Source(opener, self.origin, None, (*self.layers, layer))


def _inspect(path: Path) -> tuple[DumpInfo, tuple[_Layer, ...]]:
    try:
        if not path.exists():
            kind = "folder" if str(path).endswith(("/", "\\")) else "file"
            raise SeedError(f"{path} does not exist", hint=f"check the {kind}'s path and name")
        if path.is_dir():
            return _inspect_folder(path, path), ()
        if _DATA_FILE.match(path.name) and (path.parent / "toc.dat").is_file():
            raise SeedError(
                f"{path} is one data file of the directory-format dump {path.parent}",
                hint=f"give envctl the whole folder: {path.parent}",
            )
        source = _Source(lambda: path.open("rb"), path, path)
        return _inspect_source(source)
    except OSError as exc:
        raise SeedError(
            f"{path}: cannot read it ({exc.strerror or exc})", hint="check its permissions"
        ) from None


def _inspect_source(src: _Source) -> tuple[DumpInfo, tuple[_Layer, ...]]:
    with src.open() as stream:
        head = _read_up_to(stream, _HEAD_SIZE)
    kind = _sniff(head)
    if kind == "empty":
        raise SeedError(f"{src.name} is empty (0 bytes)", hint="make the backup again")
    if len(head) < len(_MAGIC) and _MAGIC.startswith(head):
        raise SeedError(
            f"{src.name} is truncated: {len(head)} bytes of a custom-format archive's header",
            hint="copy or download it again; it is shorter than pg_dump wrote it",
        )
    compressor = _COMPRESSORS.get(kind)
    if compressor is not None:
        opener = _decompressing_opener(src, compressor)
        return _inspect_source(src.inside(_Layer(compressor), opener))
    if kind == "custom":
        return _inspect_custom(src), src.layers
    if kind == "tar":
        return _inspect_tar(src)
    if kind == "zip":
        return _inspect_zip(src)
    if kind == "text":
        return _inspect_text(src, head), src.layers
    raise _not_a_backup(src, head, kind)


def _sniff(head: bytes) -> str:
    if not head:
        return "empty"
    if head.startswith(_MAGIC):
        return "custom"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head[257:262] == b"ustar":
        return "tar"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf16"
    if b"\x00" not in head:
        controls = sum(1 for byte in head if byte < 9 or 13 < byte < 32)
        if controls * 100 <= len(head):
            return "text"
    return "binary"


_KNOWN_BINARY = {
    b"SQLite format 3\x00": "an SQLite database",
    b"\x00\x05\x16\x07": "a macOS resource file (AppleDouble '._' file)",
    b"%PDF": "a PDF document",
    b"\x7fELF": "a program (ELF)",
}


def _not_a_backup(src: _Source, head: bytes, kind: str) -> SeedError:
    if kind in ("zstd", "lz4"):
        tool = {"zstd": "zstd -d", "lz4": "lz4 -d"}[kind]
        return SeedError(
            f"{src.name} is {kind}-compressed; envctl can only look inside gzip, bzip2 and xz",
            hint=f"decompress it first ({tool} FILE) and give envctl the result",
        )
    if kind == "utf16":
        return SeedError(
            f"{src.name} is UTF-16 text (what PowerShell's `>` writes); psql reads UTF-8",
            hint="write the dump with pg_dump -f FILE instead of redirecting its output, or "
            "convert it: iconv -f UTF-16 -t UTF-8",
        )
    for magic, what in _KNOWN_BINARY.items():
        if head.startswith(magic):
            return SeedError(f"{src.name} is {what}, not a PostgreSQL backup", hint=SUPPORTED_HINT)
    shown = " ".join(f"{byte:02x}" for byte in head[:8])
    return SeedError(
        f"{src.name} is not a PostgreSQL backup: binary data starting with {shown}",
        hint=SUPPORTED_HINT,
    )


# --- wrappers: compression, tar, zip ----------------------------------------------------------


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Guarded(io.RawIOBase):
    """A stream whose decompression or archive errors become SeedErrors naming the backup."""

    def __init__(self, inner: _Readable, where: str, kind: str) -> None:
        super().__init__()
        self._inner = inner
        self._where = where
        self._kind = kind
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(buffer))
        except (EOFError, tarfile.ReadError) as exc:
            raise SeedError(
                f"{self._where} is truncated: its {self._kind} data ends early ({exc})",
                hint="copy or download it again; it is shorter than it was written",
            ) from None
        except (zlib.error, lzma.LZMAError, zipfile.BadZipFile, OSError) as exc:
            raise SeedError(
                f"{self._where} is damaged: its {self._kind} data cannot be read ({exc})",
                hint="copy or download it again",
            ) from None
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position


def _guarded(inner: _Readable, where: str, kind: str) -> IO[bytes]:
    return io.BufferedReader(_Guarded(inner, where, kind), _CHUNK)


@contextlib.contextmanager
def _decompressing(raw: IO[bytes], kind: str, where: str) -> Iterator[IO[bytes]]:
    with _decompressor(raw, kind) as inner:
        yield _guarded(inner, where, kind)


def _decompressor(raw: IO[bytes], kind: str) -> io.BufferedIOBase:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    return lzma.LZMAFile(raw)


def _decompressing_opener(src: _Source, kind: str) -> Opener:
    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        with src.open() as raw, _decompressing(raw, kind, src.name) as data:
            yield data

    return opener


def _clean_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _is_junk(name: str) -> bool:
    parts = name.split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._") or parts[-1] in _JUNK_NAMES


def _in_folder(name: str, folder: str) -> bool:
    return posixpath.dirname(name) == folder and not _is_junk(name)


@dataclass(frozen=True)
class _Listing:
    """The regular files of a tar or zip archive: clean name -> name as stored."""

    files: dict[str, str]
    junk: bool  # macOS resource files or folder droppings were present


def _usable(name: str) -> bool:
    # extraction writes basenames only; "." and ".." would point outside the work folder
    return posixpath.basename(name) not in ("", ".", "..")


@dataclass(frozen=True)
class _Choice:
    toc: str | None = None  # clean name of the one toc.dat
    member: str | None = None  # clean name of the one file


def _choose(listing: _Listing, src: _Source, kind: str) -> _Choice:
    useful = [name for name in listing.files if not _is_junk(name)]
    tocs = [name for name in useful if posixpath.basename(name) == "toc.dat"]
    if not tocs and {"backup_label", "PG_VERSION"} & {posixpath.basename(n) for n in useful}:
        raise SeedError(
            f"{src.name} is a physical base backup (pg_basebackup), not a pg_dump backup",
            hint="make a logical backup with pg_dump, or start a server on the base backup",
        )
    if len(tocs) == 1:
        return _Choice(toc=tocs[0])
    if len(tocs) > 1:
        folders = ", ".join(posixpath.dirname(name) or "." for name in tocs)
        raise SeedError(
            f"{src.name} is a {kind} archive holding several directory dumps ({folders})",
            hint="extract the one you mean and give envctl its folder",
        )
    if len(useful) == 1:
        return _Choice(member=useful[0])
    if not useful:
        only = " (only macOS resource files)" if listing.junk else ""
        raise SeedError(f"{src.name} is a {kind} archive with no files in it{only}")
    shown = ", ".join(useful[:5]) + (", ..." if len(useful) > 5 else "")
    raise SeedError(
        f"{src.name} is a {kind} archive of {len(useful)} files ({shown}), and none of them is "
        "a pg_dump toc.dat",
        hint="extract the backup you mean and give envctl that file or folder",
    )


def _list_tar(src: _Source) -> _Listing:
    files: dict[str, str] = {}
    junk = False
    with src.open() as raw:
        try:
            with _open_tar(raw, src) as archive:
                end = 0
                for member in archive:
                    name = _clean_name(member.name)
                    junk = junk or _is_junk(name)
                    if member.isfile() and _usable(name):
                        files[name] = member.name
                        end = max(end, member.offset_data + member.size)
        except tarfile.ReadError as exc:
            raise SeedError(
                f"{src.name} is a truncated or damaged tar archive ({exc})",
                hint="copy or download it again",
            ) from None
        while raw.read(_CHUNK):
            pass
        if end > raw.tell():
            raise SeedError(
                f"{src.name} is truncated: the tar archive ends inside its last member",
                hint="copy or download it again; it is shorter than it was written",
            )
    return _Listing(files, junk)


def _open_tar(raw: IO[bytes], src: _Source) -> tarfile.TarFile:
    # a file on disk is read with seeks over member data; a decompressing stream only forward
    if src.file is not None:
        return tarfile.open(fileobj=raw, mode="r:")
    return tarfile.open(fileobj=raw, mode="r|")


def _tar_member_opener(src: _Source, raw_name: str) -> Opener:
    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        with src.open() as raw, _open_tar(raw, src) as archive:
            for member in archive:
                if member.name == raw_name:
                    data = archive.extractfile(member)
                    if data is None:
                        break
                    with data:
                        yield _guarded(data, src.name, "tar")
                    return
        raise SeedError(f"{src.name}: tar member {raw_name} went missing while reading")

    return opener


def _inspect_tar(src: _Source) -> tuple[DumpInfo, tuple[_Layer, ...]]:
    listing = _list_tar(src)
    choice = _choose(listing, src, "tar")
    if choice.member is not None:
        raw_name = listing.files[choice.member]
        layer = _Layer("tar", raw_name, skipped_junk=listing.junk)
        return _inspect_source(src.inside(layer, _tar_member_opener(src, raw_name)))
    assert choice.toc is not None
    folder = posixpath.dirname(choice.toc)
    toc = _Source(_tar_member_opener(src, listing.files[choice.toc]), src.origin)
    header, entries = _read_toc_dat(toc, f"{src.name}: {choice.toc}")
    names = {posixpath.basename(n) for n in listing.files if _in_folder(n, folder)}
    if header.format not in _TOC_FORMATS:
        raise SeedError(f"{src.name}: {choice.toc} is the TOC of a {header.format} archive")
    if not folder and "restore.sql" in names:
        _check_data_files(header, entries, names, src.name, blobs_toc_is_listed=False)
        return _info(src.origin, "tar", src.layers, header, entries), src.layers
    _check_data_files(header, entries, names, src.name, blobs_toc_is_listed=True)
    layers = (*src.layers, _Layer("tar", folder, folder=True, skipped_junk=listing.junk))
    return _info(src.origin, "directory", layers, header, entries), layers


def _inspect_zip(src: _Source) -> tuple[DumpInfo, tuple[_Layer, ...]]:
    if src.file is None:
        raise SeedError(
            f"{src.name} is a zip archive inside another wrapper",
            hint="unzip it first and give envctl what it holds",
        )
    try:
        with zipfile.ZipFile(src.file) as archive:
            entries = [e for e in archive.infolist() if not e.is_dir()]
    except zipfile.BadZipFile as exc:
        raise SeedError(
            f"{src.name} is a damaged or truncated zip archive ({exc})",
            hint="copy or download it again",
        ) from None
    files = {_clean_name(e.filename): e.filename for e in entries if _usable(e.filename)}
    listing = _Listing(files, any(_is_junk(name) for name in files))
    choice = _choose(listing, src, "zip")
    path = src.file
    if choice.member is not None:
        raw_name = files[choice.member]
        layer = _Layer("zip", raw_name, skipped_junk=listing.junk)
        return _inspect_source(src.inside(layer, _zip_member_opener(path, raw_name, src.name)))
    assert choice.toc is not None
    folder = posixpath.dirname(choice.toc)
    opener = _zip_member_opener(path, files[choice.toc], src.name)
    header, toc_entries = _read_toc_dat(_Source(opener, src.origin), f"{src.name}: {choice.toc}")
    if header.format not in _TOC_FORMATS:
        raise SeedError(f"{src.name}: {choice.toc} is the TOC of a {header.format} archive")
    names = {posixpath.basename(n) for n in files if _in_folder(n, folder)}
    _check_data_files(header, toc_entries, names, src.name, blobs_toc_is_listed=True)
    layers = (*src.layers, _Layer("zip", folder, folder=True, skipped_junk=listing.junk))
    return _info(src.origin, "directory", layers, header, toc_entries), layers


def _zip_member_opener(path: Path, raw_name: str, where: str) -> Opener:
    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        with zipfile.ZipFile(path) as archive, archive.open(raw_name) as data:
            yield _guarded(data, where, "zip")

    return opener


# --- directory dumps ---------------------------------------------------------------------------


def _inspect_folder(folder: Path, origin: Path) -> DumpInfo:
    toc = folder / "toc.dat"
    if not toc.is_file():
        raise _folder_error(folder)
    header, entries = _read_toc_dat(_Source(lambda: toc.open("rb"), origin, toc), str(toc))
    if header.format not in _TOC_FORMATS:
        raise SeedError(f"{toc} is the TOC of a {header.format} archive, not of a directory dump")
    names = {p.name for p in folder.iterdir() if p.is_file()}
    _check_data_files(header, entries, names, str(folder), blobs_toc_is_listed=True)
    _check_blob_files(folder, entries, names)
    return _info(origin, "directory", (), header, entries)


def _folder_error(folder: Path) -> SeedError:
    if (folder / "PG_VERSION").is_file():
        return SeedError(
            f"{folder} is a PostgreSQL data directory, not a backup",
            hint="make a backup with pg_dump (e.g. pg_dump -Fd -f FOLDER DBNAME)",
        )
    inside = sorted(p for p in folder.iterdir() if not _is_junk(p.name))
    nested = [p for p in inside if (p / "toc.dat").is_file()]
    hint = (
        f"did you mean {nested[0]}?"
        if len(nested) == 1
        else "a directory-format backup (pg_dump -Fd) has a toc.dat; give envctl that folder"
    )
    shown = ", ".join(p.name for p in inside[:5]) + (", ..." if len(inside) > 5 else "")
    holds = f" (it holds: {shown})" if inside else " (it is empty)"
    return SeedError(
        f"{folder} is a folder without toc.dat, so not a pg_dump directory backup{holds}", hint
    )


def _check_data_files(
    header: _Header,
    entries: list[_TocEntry] | None,
    names: set[str],
    where: str,
    *,
    blobs_toc_is_listed: bool,
) -> None:
    """Every entry with data has its file: a directory copied or zipped halfway is caught here."""
    suffix = {"gzip": ".gz", "lz4": ".lz4", "zstd": ".zst"}.get(header.compression, "")
    missing = []
    for entry in entries or ():
        if not entry.had_dumper or not entry.filename:
            continue
        if entry.desc == "BLOBS":
            candidates = [f"blobs_{entry.dump_id}.toc", "blobs.toc"]
            if blobs_toc_is_listed:
                candidates.insert(0, entry.filename)
        else:
            candidates = [entry.filename + suffix]
            candidates += [entry.filename + other for other in _DATA_SUFFIXES if other != suffix]
        if not any(name in names for name in candidates):
            missing.append(candidates[0])
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise SeedError(
            f"{where} is incomplete: {len(missing)} data file(s) listed in its toc.dat are "
            f"missing ({shown})",
            hint="copy the whole backup again; pg_restore would stop at the first missing file",
        )


def _check_blob_files(folder: Path, entries: list[_TocEntry] | None, names: set[str]) -> None:
    for entry in entries or ():
        if entry.desc != "BLOBS" or not entry.filename or entry.filename not in names:
            continue
        text = (folder / entry.filename).read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            parts = line.split(" ", 1)
            if len(parts) == 2 and not any(parts[1] + s in names for s in _DATA_SUFFIXES):
                raise SeedError(
                    f"{folder} is incomplete: large object file {parts[1]} is missing",
                    hint="copy the whole backup again",
                )


# --- archive header and table of contents (pg_backup_archiver.c) ------------------------------


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


def _inspect_custom(src: _Source) -> DumpInfo:
    with src.open() as stream:
        header, entries = _read_archive(stream, src.name)
        if header.format != "custom":
            if src.file is not None and src.file.name == "toc.dat" and not src.layers:
                return _inspect_folder(src.file.parent, src.origin)
            raise SeedError(
                f"{src.name} is the toc.dat of a {header.format}-format dump, not a backup alone",
                hint="give envctl the whole dump (the tar file or the folder)",
            )
        if src.layers:
            while stream.read(_CHUNK):  # the wrappers must come off to their end
                pass
        elif entries is not None:
            _check_custom_data(stream, header, entries, src.name)
    return _info(src.origin, "custom", src.layers, header, entries)


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


# --- plain SQL ----------------------------------------------------------------------------------

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


# --- building the answer ------------------------------------------------------------------------


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


def _describe(layers: tuple[_Layer, ...]) -> str | None:
    return " > ".join(layer.describe() for layer in layers) or None


_VERSION = re.compile(r"(\d+)(?:\.\d+)*(?:devel|alpha\d*|beta\d*|rc\d*)?")


def _version_token(text: str | None) -> str | None:
    """'17.2 (Debian 17.2-1.pgdg120+1)' -> '17.2'."""
    if not text:
        return None
    match = _VERSION.match(text.strip())
    return match.group(0) if match else text.split()[0]


def _major(version: str | None) -> int | None:
    match = _VERSION.match(version or "")
    return int(match.group(1)) if match else None


# --- small file helpers -------------------------------------------------------------------------


def _read_up_to(stream: IO[bytes], size: int) -> bytes:
    parts, wanted = [], size
    while wanted > 0:
        data = stream.read(wanted)
        if not data:
            break
        parts.append(data)
        wanted -= len(data)
    return b"".join(parts)


def _copy_to(data: IO[bytes], target: Path) -> None:
    with target.open("wb") as out:
        shutil.copyfileobj(data, out, _CHUNK)


def _decompressed_name(name: str, kind: str) -> str:
    for suffix, replacement in {
        "gzip": ((".tgz", ".tar"), (".gz", "")),
        "bzip2": ((".tbz2", ".tar"), (".tbz", ".tar"), (".bz2", "")),
        "xz": ((".txz", ".tar"), (".xz", "")),
    }[kind]:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)] + replacement
    return name + ".unpacked"
