"""What a seed file's bytes hash to, remembered by the file's identity, so that a warm start
neither reads nor hashes an unchanged seed again."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from provisioner.envfile import write_atomic
from provisioner.state import state_root

# --- what a seed file's bytes hash to, remembered by its identity ---------------------------
#
# Hashing a 200 MB seed takes a sixth of a second and checking it is whole several times that:
# a warm start would cost more the bigger the seed. So both are remembered per file, under the
# file's identity: device, inode, size, and the nanosecond mtime and ctime. Any write changes
# the ctime (which no program can set back), a replaced file has another inode. A file changed
# less than RACY_SECONDS before it was read is not remembered: the kernel's coarse clock could
# give a later write in the same tick the same times.

RACY_SECONDS = 2.0


def seed_digest(path: Path, required_major: int | None) -> str:
    """The SHA-256 of a seed file (or of a directory dump's files), remembered for next time."""
    known = remembered_seed(path)
    if known is not None:
        return str(known["sha256"])
    started = time.time()
    identity = _identity(path)
    digest = hashlib.sha256()
    _hash_path(digest, path)
    value = digest.hexdigest()
    if identity is not None and identity[-1] < (started - RACY_SECONDS) * 1e9:
        _remember(path, {"id": identity, "sha256": value, "major": required_major})
    return value


def remembered_seed(path: Path) -> dict[str, Any] | None:
    """What `seed_digest` remembered of this very file, if it is unchanged: sha256, major."""
    entry = _seed_memo().get(str(path))
    identity = _identity(path)
    if entry is None or identity is None or entry.get("id") != identity:
        return None
    return entry


def _identity(path: Path) -> list[int] | None:
    """Device, inode, size, mtime and ctime of a file, or of a folder's files (latest ctime
    last, for the racy check)."""
    try:
        stats = [file.stat() for file in _seed_files(path)]
    except OSError:
        return None
    if not stats:
        return None
    fields = [
        value
        for st in stats
        for value in (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    ]
    return [*fields, max(st.st_ctime_ns for st in stats)]


def _memo_path() -> Path:
    return state_root() / "cache" / "seeds.json"


def _seed_memo() -> dict[str, dict[str, Any]]:
    try:
        loaded = json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _remember(path: Path, entry: dict[str, Any]) -> None:
    memo = _seed_memo()
    memo[str(path)] = entry
    write_atomic(_memo_path(), json.dumps(memo, indent=1).encode())


def _seed_files(path: Path) -> list[Path]:
    """A seed file, or every file of a folder (a directory-format dump), in a stable order."""
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def _hash_path(digest: Any, path: Path) -> None:
    # Folders hash every file with its relative name.
    for file in _seed_files(path):
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
