"""Initialized and seeded clusters, kept so that the next start skips initdb and the restore.

An entry is keyed by a hash of everything that determines the initial state: the image's ID, the
version, initdb's locale and encoding, `durable`, the user and database, roles, extensions,
schemas, seed options, and the bytes of every seed file. Any change is a miss; a stale entry is
never served. No secret is shared through an entry: every environment sets its own password
before it accepts a connection over TCP, and an entry holds neither the password nor the
certificates and key of the environment it was built from. On Docker an entry is a committed
image (`envctl-cache:<key>`), which starts as fast as the image it came from, whatever the
seed's size. On the native runtime it is a copy of the data folder under ENVCTL_CACHE_DIR
(default ~/.cache/envctl), taken while the server is frozen; a start copies it back instead of
running initdb.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from provisioner.profile import PostgresConfig

CACHE_VARIABLE = "ENVCTL_CACHE"
CACHE_REPOSITORY = "envctl-cache"
CACHE_LABEL = "dev.envctl.cache"
# Bump when what an entry holds changes shape, so older entries are never served.
# 2: started by envctl's boot script; 3: 1 MB WAL segments unless durable (Docker); 4: natively too
CACHE_FORMAT = 4
CACHED_PGDATA = "/var/lib/envctl/pgdata"  # outside the image's VOLUME, so a commit keeps it


def mode() -> str:
    """ENVCTL_CACHE: `off` (no lookup, no entry), `on` (the first start of a key keeps its
    cluster), or `auto`, the default: the second start does.

    Keeping a cluster takes about half a second (a commit of the container, a copy of the
    folder), and a CI job on a fresh machine starts each profile once: it would pay for an
    entry nobody uses. So an entry is made once a key has been started before with this
    state folder (`last_used`), where it will be used again.
    """
    value = os.environ.get(CACHE_VARIABLE, "auto").strip().lower()
    if value in ("off", "0", "false", "no"):
        return "off"
    if value in ("on", "1", "true", "yes"):
        return "on"
    return "auto"


def enabled() -> bool:
    """Whether the cache is used at all (ENVCTL_CACHE=off turns it off)."""
    return mode() != "off"


def keeps(key: str) -> bool:
    """Whether a start of `key` that missed keeps its cluster as an entry (see `mode`)."""
    return mode() == "on" or last_used(key) is not None


def cache_key(pg: PostgresConfig, image_id: str, seed_digests: list[str]) -> str:
    """The hash of everything that determines an environment's initial data."""
    digest = hashlib.sha256()
    state: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "image": image_id,
        "version": pg.version,
        "locale": pg.locale,
        "encoding": pg.encoding,
        "user": pg.user,
        "database": pg.database,
        "durable": pg.durable,  # initdb's WAL segment size differs
        "roles": [role.model_dump() for role in pg.roles],
        "extensions": pg.extensions,
        "schemas": pg.schemas,
        "seed": [item.model_dump(mode="json") for item in pg.seed],
        "seed_options": pg.seed_options.model_dump(),
        "migrate": pg.migrate.model_dump(mode="json") if pg.migrate else None,
        "pgdata": CACHED_PGDATA,
        "seed_bytes": seed_digests,
    }
    digest.update(json.dumps(state, sort_keys=True, default=str).encode())
    return digest.hexdigest()


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
    from provisioner.state import state_root

    return state_root() / "cache" / "seeds.json"


def _seed_memo() -> dict[str, dict[str, Any]]:
    try:
        loaded = json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _remember(path: Path, entry: dict[str, Any]) -> None:
    from provisioner.envfile import write_atomic

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


def image_tag(key: str) -> str:
    """The image name of a cache entry."""
    return f"{CACHE_REPOSITORY}:{key[:40]}"


def mark_used(key: str) -> None:
    """Remember when a key was last started, with or without an entry (for `keeps`, `cache
    ls` and LRU pruning)."""
    from provisioner.state import state_root

    folder = state_root() / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / key).touch()


def last_used(key: str) -> float | None:
    """When the key was last started by this state folder, if ever."""
    from provisioner.state import state_root

    try:
        return (state_root() / "cache" / key).stat().st_mtime
    except OSError:
        return None


def list_entries(runtimes: list[Any]) -> list[dict[str, Any]]:
    """Every entry of these runtimes with key, profile, size and last use; most recently used
    first."""
    entries = []
    for runtime in runtimes:
        for found in runtime.cache_entries():
            key = found["labels"].get(CACHE_LABEL, "")
            entries.append(
                {
                    "runtime": runtime.name,
                    "key": key,
                    "image": found["id"],
                    "tagged": bool(found["tags"]),
                    "profile": found["labels"].get("dev.envctl.cache-profile", ""),
                    "size": found["size"],
                    "created": found["created"],
                    "last_used": last_used(key) if found["tags"] else None,
                }
            )
    entries.sort(key=lambda e: (e["tagged"], e["last_used"] or 0.0), reverse=True)
    return entries


def prune(runtimes: list[Any], *, everything: bool, max_bytes: int | None) -> list[dict[str, Any]]:
    """Remove untagged leftovers, then entries least recently used first until under max_bytes
    (or all of them); return what was removed. Entries in use by an environment stay."""
    by_name = {runtime.name: runtime for runtime in runtimes}
    entries = list_entries(runtimes)
    removed = []
    kept_size = sum(entry["size"] for entry in entries)
    for entry in reversed(entries):  # least recently used (and untagged) first
        over = max_bytes is not None and kept_size > max_bytes
        if not (everything or over or not entry["tagged"]):
            continue
        try:
            by_name[entry["runtime"]].remove_cache_entry(entry["image"])
        except Exception:  # in use by a running environment: keep it
            continue
        kept_size -= entry["size"]
        removed.append(entry)
    return removed


def runtimes_with_entries() -> list[Any]:
    """The runtimes whose entries `cache ls` and `cache prune` see: native always, Docker when
    an engine answers."""
    from provisioner.errors import DockerUnavailableError
    from provisioner.runtime.native import NativeRuntime

    found: list[Any] = [NativeRuntime()]
    try:
        from provisioner.runtime.docker import DockerRuntime

        found.insert(0, DockerRuntime())
    except DockerUnavailableError:
        pass
    return found
