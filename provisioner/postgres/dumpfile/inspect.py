"""Locating the dump inside its wrappers: a file's first bytes say what it is (custom archive,
compressed, tar, zip, text, other), and each kind is taken to its reader; tar and zip archives
are looked into for the one member or toc.dat folder that is the dump.
"""

from __future__ import annotations

import posixpath
import zipfile
from pathlib import Path
from typing import Literal

from provisioner.errors import SeedError
from provisioner.postgres.dumpfile._io import _CHUNK, _read_up_to
from provisioner.postgres.dumpfile.archive import (
    _MAGIC,
    _TOC_FORMATS,
    _check_custom_data,
    _info,
    _read_archive,
    _read_toc_dat,
)
from provisioner.postgres.dumpfile.folder import _DATA_FILE, _check_data_files, _inspect_folder
from provisioner.postgres.dumpfile.info import SUPPORTED_HINT, DumpInfo
from provisioner.postgres.dumpfile.plain import _inspect_text
from provisioner.postgres.dumpfile.wrappers import (
    _choose,
    _clean_name,
    _decompressing_opener,
    _in_folder,
    _is_junk,
    _Layer,
    _list_tar,
    _Listing,
    _Source,
    _tar_member_opener,
    _usable,
    _zip_member_opener,
)

_HEAD_SIZE = 8192


Compressor = Literal["gzip", "bzip2", "xz"]
_COMPRESSORS: dict[str, Compressor] = {"gzip": "gzip", "bzip2": "bzip2", "xz": "xz"}


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
