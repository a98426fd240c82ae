"""Directory dumps (pg_dump -Fd): a folder with a toc.dat and one file per table's data. Its TOC
is read, every data and large object file it lists must be there, and a folder without toc.dat
gets told what it is instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from provisioner.errors import SeedError
from provisioner.postgres.dumpfile.archive import (
    _TOC_FORMATS,
    _Header,
    _info,
    _read_toc_dat,
    _TocEntry,
)
from provisioner.postgres.dumpfile.info import DumpInfo
from provisioner.postgres.dumpfile.wrappers import _is_junk, _Source

_DATA_SUFFIXES = ("", ".gz", ".lz4", ".zst")


# The other files pg_dump -Fd writes next to its toc.dat
_DATA_FILE = re.compile(r"^(?:\d+\.dat|blob_\d+\.dat|blobs(?:_\d+)?\.toc)(?:\.gz|\.lz4|\.zst)?$")


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
