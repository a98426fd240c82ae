"""The native cache: one folder per entry, a copy of a data folder stopped in time.

A copy is made while the server is frozen (SIGSTOP to its process group, as `docker commit`
pauses a container): it is what a crash at that instant would leave, which the next start
recovers from the last checkpoint in milliseconds. A copy is built under a dot-name and renamed
into place whole; one left by a killed envctl is known as abandoned by the builder in its name.
An entry also holds the spare copies warm starts take (`spare`), and they go with it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from provisioner.errors import InfrastructureError
from provisioner.processes import process_alive, start_time
from provisioner.runtime.binaries import find_install
from provisioner.runtime.labels import CACHE_LABEL
from provisioner.runtime.native import spare
from provisioner.runtime.native.files import copy_tree, tree
from provisioner.runtime.native.layout import ServerState, private_folder, running_state

log = logging.getLogger(__name__)

_BUILDING = re.compile(r"^\.[0-9a-f]{16}-(\d+)\.(\d+)-")


def cache_folder() -> Path:
    """Where native cache entries live: ENVCTL_CACHE_DIR, else the user's cache folder."""
    base = os.environ.get("ENVCTL_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = str(Path(xdg) / "envctl" if xdg else Path.home() / ".cache" / "envctl")
    folder = Path(base) / "native"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def cached_entry(key: str) -> str | None:
    entry = cache_folder() / key
    return str(entry) if (entry / "data" / "PG_VERSION").is_file() else None


def store(state: ServerState, key: str, labels: dict[str, str]) -> None:
    """Keep a copy of the running server's data folder as the entry `key`."""
    assert state.pid is not None
    root = cache_folder()
    if (root / key).exists():
        return  # built meanwhile by another envctl
    # Named after its builder: a copy left by a killed envctl is known as abandoned.
    builder = f"{os.getpid()}.{start_time(os.getpid()) or 0}"
    building = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-{builder}-", dir=root))
    try:
        os.killpg(state.pid, signal.SIGSTOP)
        try:
            copy_tree(state.layout.data, building / "data")
        finally:
            os.killpg(state.pid, signal.SIGCONT)
        # The lock names a live server (this one): a server started from the copy would
        # refuse to share its data folder with it.
        (building / "data" / "postmaster.pid").unlink(missing_ok=True)
        info = {"key": key, "labels": labels, "created": time.time(), "version": state.version}
        (building / "entry.json").write_text(json.dumps(info))
        os.rename(building, root / key)  # whole or not at all; an existing one wins
        spare.make(root / key, state.layout.folder)  # the next start is already fast
    except OSError as exc:
        if not (root / key).exists():
            log.warning("could not keep the cluster in the cache: %s", exc)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def list_entries() -> list[dict[str, Any]]:
    entries = []
    for entry in sorted(cache_folder().iterdir()):
        try:
            info = json.loads((entry / "entry.json").read_text())
        except (OSError, ValueError):
            if not _abandoned_build(entry):
                continue  # a build in progress, or a removal
            info = {"created": entry.stat().st_mtime}  # untagged: any prune removes it
        size = sum(f.stat().st_size for f in tree(entry / "data") if f.is_file())
        entries.append(
            {
                "id": str(entry),
                "tags": [] if entry.name.startswith(".") else [info.get("key", "")],
                "labels": {CACHE_LABEL: info.get("key", ""), **info.get("labels", {})},
                "size": size,
                "created": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(info.get("created", 0)))
                ),
            }
        )
    return entries


def remove(entry_id: str) -> None:
    entry = Path(entry_id)
    if entry.parent != cache_folder():
        raise InfrastructureError(f"{entry_id} is not a native cache entry")
    # Renamed first: a start never copies from half an entry.
    doomed = entry.with_name(f".removing-{entry.name}")
    os.rename(entry, doomed)
    spare.stop_builds(doomed)  # a spare being built must not write into what is removed
    shutil.rmtree(doomed)


def _abandoned_build(entry: Path) -> bool:
    """A partial copy of `store` whose envctl is gone (killed during the copy)."""
    match = _BUILDING.match(entry.name)
    if match is None or entry.is_symlink() or not entry.is_dir():
        return False
    pid, started = int(match.group(1)), int(match.group(2))
    return not process_alive(pid, started or None)


class NativeCache:
    """The native runtime's cache: a copy of a stopped-in-time data folder per entry."""

    def identity(self, image: str, major: int, bin_dir: Path | None) -> str | None:
        install = find_install(major, bin_dir)
        return f"native {install.version} {install.bin_dir} ({install.source})"

    def entry(self, key: str) -> str | None:
        return cached_entry(key)

    def store(self, env_id: str, key: str, base_image: str, labels: dict[str, str]) -> None:
        store(running_state(env_id), key, labels)

    def started_from(self, env_id: str, entry: str) -> None:
        spare.make(Path(entry), private_folder(env_id))

    def entries(self) -> list[dict[str, Any]]:
        return list_entries()

    def remove(self, entry_id: str) -> None:
        remove(entry_id)
