"""DumpInfo: what a backup is, read from its own bytes (format, versions, counts), and the
version strings it is built from ('17.2 (Debian ...)' -> '17.2', major 17).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

DumpFormat = Literal["plain", "custom", "tar", "directory", "globals", "cluster"]


SUPPORTED_HINT = (
    "envctl reads what pg_dump writes (plain SQL, -Fc custom, -Ft tar, -Fd directory) and "
    "pg_dumpall output, also gzip/bzip2/xz-compressed, tarred or zipped"
)


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
