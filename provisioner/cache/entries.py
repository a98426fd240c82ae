"""The entries every runtime keeps, as `cache ls` lists them and `cache prune` removes them."""

from __future__ import annotations

from typing import Any

from provisioner.cache.keys import last_used
from provisioner.runtime import Runtime
from provisioner.runtime.labels import CACHE_LABEL, CACHE_PROFILE_LABEL


def list_entries(runtimes: list[Runtime]) -> list[dict[str, Any]]:
    """Every entry of these runtimes with key, profile, size and last use; most recently used
    first."""
    entries = []
    for runtime in runtimes:
        for found in runtime.cache.entries():
            key = found["labels"].get(CACHE_LABEL, "")
            entries.append(
                {
                    "runtime": runtime.name,
                    "key": key,
                    "image": found["id"],
                    "tagged": bool(found["tags"]),
                    "profile": found["labels"].get(CACHE_PROFILE_LABEL, ""),
                    "size": found["size"],
                    "created": found["created"],
                    "last_used": last_used(key) if found["tags"] else None,
                }
            )
    entries.sort(key=lambda e: (e["tagged"], e["last_used"] or 0.0), reverse=True)
    return entries


def prune(
    runtimes: list[Runtime], *, everything: bool, max_bytes: int | None
) -> list[dict[str, Any]]:
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
            by_name[entry["runtime"]].cache.remove(entry["image"])
        except Exception:  # in use by a running environment: keep it
            continue
        kept_size -= entry["size"]
        removed.append(entry)
    return removed
