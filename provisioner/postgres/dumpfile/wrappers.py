"""The wrappers around a dump: gzip/bzip2/xz compression, tar and zip archives. A _Source is
bytes to look at inside its _Layers; here are the streams that take the layers off (errors
naming the backup), the listing of tar and zip members and the choice of the one that holds the
dump, and taking a layer off on disk.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import posixpath
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Protocol

from provisioner.errors import SeedError
from provisioner.postgres.dumpfile._io import _CHUNK

_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


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


def _zip_member_opener(path: Path, raw_name: str, where: str) -> Opener:
    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        with zipfile.ZipFile(path) as archive, archive.open(raw_name) as data:
            yield _guarded(data, where, "zip")

    return opener


def _describe(layers: tuple[_Layer, ...]) -> str | None:
    return " > ".join(layer.describe() for layer in layers) or None


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
