"""Spare copies of a native cache entry: a ready copy of its data folder, kept in
`<entry>/spares/`, that a warm start renames into place (atomic, a fraction of a millisecond)
instead of copying. After a start from the entry answers, and after `store` keeps it, the next
spare is built in the background: `python -m provisioner.runtime.native.spare ENTRY`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provisioner.processes import kill_group, start_time
from provisioner.runtime.native.files import copy_tree

log = logging.getLogger(__name__)

SPARES = "spares"

# Held by a builder and its `cp` while they build: one build per entry at a time.
_LOCK = ".lock"

# A build in progress, named after its builder (pid and start time), which leads its group.
_BUILDING = re.compile(r"^\.build-(\d+)\.(\d+)-")

STOP_TIMEOUT = 5.0  # how long `stop_builds` waits for a killed build to let go of the lock


def take(entry: Path, data: Path) -> bool:
    """Move a spare of `entry` to `data`; False if there is none this start can take.

    A rename: of two starts at once only one gets a spare, and the other copies."""
    folder = entry / SPARES
    try:
        names = sorted(name for name in os.listdir(folder) if not name.startswith("."))
    except OSError:
        return False
    for name in names:
        try:
            os.rename(folder / name / "data", data)
        except OSError:
            continue  # taken meanwhile, or on another filesystem (EXDEV)
        with contextlib.suppress(OSError):
            os.rmdir(folder / name)
        log.info("took the spare copy %s of the cache entry", folder / name)
        return True
    return False


def make(entry: Path, folder: Path) -> None:
    """Build the next spare of `entry` in a detached process, if starts into the private
    folder `folder` can take one (a rename works on one filesystem only)."""
    try:
        if os.stat(entry).st_dev != os.stat(folder).st_dev:
            return
    except OSError:
        return
    # The builder serves the cache, no environment: it gets no state folder of theirs.
    env = {key: value for key, value in os.environ.items() if key != "ENVCTL_STATE_DIR"}
    # Detached, in its own session: `envctl up` returns at once, and its exit waits for nothing.
    subprocess.Popen(
        [sys.executable, "-m", __name__, str(entry)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        env=env,
        start_new_session=True,
    )


def build(entry: Path) -> None:
    """Make a spare of `entry` unless one is there or being built: copied under a dot-name,
    then renamed into `spares/`, whole or not at all. Builds of dead builders are removed."""
    folder = entry / SPARES
    try:
        # Not `parents`: an entry removed meanwhile stays removed.
        folder.mkdir(mode=0o700, exist_ok=True)
        lock = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return
    try:
        if not _try_lock(lock):
            return  # another builder's
        ready = False
        for name in os.listdir(folder):
            if name == _LOCK:
                continue
            if name.startswith(".") or not (folder / name / "data").is_dir():
                # A build whose builder died (we hold the lock), or what a take left.
                shutil.rmtree(folder / name, ignore_errors=True)
            else:
                ready = True
        if ready:
            return  # one spare is enough
        builder = f"{os.getpid()}.{start_time(os.getpid()) or 0}"
        building = Path(tempfile.mkdtemp(prefix=f".build-{builder}-", dir=folder))
        try:
            # `cp` holds the lock too: killed alone, this builder leaves no copy running
            # that the next one would race.
            copy_tree(entry / "data", building / "data", pass_fds=(lock,))
            # Under the entry's own path: when the entry was removed, this fails.
            os.rename(building, folder / building.name.removeprefix(".build-"))
        finally:
            shutil.rmtree(building, ignore_errors=True)
    except OSError as exc:
        log.info("no spare copy of %s: %s", entry, exc)
    finally:
        os.close(lock)


def stop_builds(entry: Path) -> None:
    """Stop every build of a spare of `entry`, an entry renamed away to be removed: once this
    returns, nothing writes into it any more."""
    folder = entry / SPARES
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _BUILDING.match(name)
        if match is not None:
            kill_group(int(match.group(1)), int(match.group(2)) or None, signal.SIGKILL, 1.0)
    try:
        lock = os.open(folder / _LOCK, os.O_RDONLY)
    except OSError:
        return
    try:
        # Its `cp` holds the lock until it is gone too.
        deadline = time.monotonic() + STOP_TIMEOUT
        while not _try_lock(lock) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.close(lock)


def _try_lock(fd: int) -> bool:
    """Take the lock on the open file `fd` if nobody holds it (released when all its holders
    have closed it, or died)."""
    import fcntl  # POSIX, as the native runtime is: imported when it runs

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    build(Path(sys.argv[1]))
