"""The cache key: a hash of everything that determines an environment's initial data, and
when each key was last started (which decides whether a start keeps its cluster)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from provisioner.profile import PostgresConfig
from provisioner.state import state_root

CACHE_VARIABLE = "ENVCTL_CACHE"
# Bump when what an entry holds changes shape, so older entries are never served.
# 2: started by envctl's boot script; 3: 1 MB WAL segments unless durable (Docker); 4: natively
# too; 5: where the cluster lives is the runtime's part of the key (its cache identity)
CACHE_FORMAT = 5


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
        "seed_bytes": seed_digests,
    }
    if pg.template1:  # only when set: the keys of every other profile stay as they were
        state["template1"] = True
    digest.update(json.dumps(state, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def mark_used(key: str) -> None:
    """Remember when a key was last started, with or without an entry (for `keeps`, `cache
    ls` and LRU pruning)."""
    folder = state_root() / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / key).touch()


def last_used(key: str) -> float | None:
    """When the key was last started by this state folder, if ever."""
    try:
        return (state_root() / "cache" / key).stat().st_mtime
    except OSError:
        return None
