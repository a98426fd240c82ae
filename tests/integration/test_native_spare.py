"""Native warm starts from a spare copy: a ready copy of the entry's data folder, kept in the
entry, renamed into place instead of copied; the next one built in the background.

Real binaries (Debian's postgresql-15), the cache on, no mocks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.profile import load_profile
from provisioner.state import load_record
from tests.conftest import envctl, write_profile

pytestmark = pytest.mark.native

SEED = "CREATE TABLE items AS SELECT n FROM generate_series(1, 2000) AS n;\n"

WAIT = 60.0  # bound on a background copy of ~35 MB on a busy machine


@pytest.fixture
def cached(tmp_path: Path, native: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A seeded native profile with the cache on."""
    monkeypatch.setenv("ENVCTL_CACHE", "on")
    (tmp_path / "seed.sql").write_text(f"-- {tmp_path}\n" + SEED)
    text = "name: spare\npostgres:\n  version: '15'\n  seed: [seed.sql]\nenv:\n  file: null\n"
    return write_profile(tmp_path, text, name="spare.yaml")


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {WAIT:.0f}s"
        time.sleep(0.05)


def cache_root(tmp_path: Path) -> Path:
    return tmp_path / "envctl-cache" / "native"


def the_entry(tmp_path: Path) -> Path:
    entries = [e for e in cache_root(tmp_path).iterdir() if not e.name.startswith(".")]
    assert len(entries) == 1, entries
    return entries[0]


def spares(entry: Path) -> list[str]:
    """The whole spares of `entry` (not builds in progress)."""
    folder = entry / "spares"
    return sorted(n for n in os.listdir(folder) if not n.startswith(".")) if folder.is_dir() else []


def builds(entry: Path) -> list[str]:
    folder = entry / "spares"
    return [n for n in os.listdir(folder) if n.startswith(".build-")] if folder.is_dir() else []


def start(profile: Path) -> dict[str, Any]:
    """`envctl up`; the record's details, with the seed's row count and the start's output."""
    result = envctl("--verbose", "up", str(profile))
    assert result.returncode == 0, result.stderr
    record = load_record(load_profile(profile).env_id)
    assert record is not None and record.connection is not None
    with psycopg.connect(record.variables["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT count(*) FROM items").fetchone()
    return {**record.details, "rows": row[0] if row else None, "output": result.stderr}


def stop(profile: Path) -> None:
    result = envctl("down", str(profile))
    assert result.returncode == 0, result.stderr


def keep_entry_with_a_spare(tmp_path: Path, profile: Path) -> tuple[Path, str]:
    """The first start keeps the entry; a spare of it follows in the background."""
    first = start(profile)
    stop(profile)
    assert "kept the initialized cluster in the cache" in first["output"]
    entry = the_entry(tmp_path)
    wait_for(lambda: len(spares(entry)) == 1, "spare after the entry was kept")
    return entry, spares(entry)[0]


def test_a_warm_start_takes_the_spare_and_the_next_one_is_built(
    tmp_path: Path, cached: Path
) -> None:
    entry, spare = keep_entry_with_a_spare(tmp_path, cached)
    assert not (entry / "spares" / spare / "data" / "postmaster.pid").exists()
    second = start(cached)
    try:
        assert "from the cache" in second["output"]
        assert second.get("from_spare") is True, second["output"]
        assert "took the spare copy" in second["output"]
        assert second["rows"] == 2000
        assert spare not in spares(entry)  # renamed away: no other start gets it
        data = Path(second["data_dir"])
        mine, original = data.stat(), (entry / "data").stat()
        # Owners and modes as `cp -a` of the entry gives them (the server's user, as root).
        assert (mine.st_uid, mine.st_gid, mine.st_mode) == (
            original.st_uid,
            original.st_gid,
            original.st_mode,
        )
        wait_for(lambda: len(spares(entry)) == 1, "new spare after a start took one")
    finally:
        stop(cached)
    renewed = spares(entry)[0]
    assert renewed != spare
    third = start(cached)
    try:
        assert third.get("from_spare") is True, third["output"]
        assert third["rows"] == 2000
        assert renewed not in spares(entry)
    finally:
        stop(cached)
    # At most one spare per entry, however many starts made one.
    wait_for(lambda: len(spares(entry)) == 1 and not builds(entry), "spare after the third")


def test_without_a_spare_a_warm_start_copies(tmp_path: Path, cached: Path) -> None:
    entry, spare = keep_entry_with_a_spare(tmp_path, cached)
    shutil.rmtree(entry / "spares" / spare)
    second = start(cached)
    try:
        assert "from the cache" in second["output"]
        assert "from_spare" not in second
        assert second["rows"] == 2000
    finally:
        stop(cached)
    wait_for(lambda: len(spares(entry)) == 1, "spare after a start that copied")


def test_prune_all_removes_the_entry_with_its_spares_and_a_build_in_progress(
    tmp_path: Path, cached: Path
) -> None:
    keep_entry_with_a_spare(tmp_path, cached)
    pruned = envctl("cache", "prune", "--all")
    assert pruned.returncode == 0, pruned.stderr
    assert list(cache_root(tmp_path).iterdir()) == []
    # Again, while a spare is being built.
    entry, spare = keep_entry_with_a_spare(tmp_path, cached)
    shutil.rmtree(entry / "spares" / spare)
    builder = subprocess.Popen(
        [sys.executable, "-m", "provisioner.runtime.native.spare", str(entry)],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + WAIT
        while not builds(entry):
            assert builder.poll() is None, "the build ended before it was seen"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        pruned = envctl("cache", "prune", "--all")
        assert pruned.returncode == 0, pruned.stderr
        builder.wait(timeout=WAIT)  # stopped by the prune, or failed: it must not outlive it
    finally:
        if builder.poll() is None:
            os.killpg(builder.pid, 9)
            builder.wait()
    assert list(cache_root(tmp_path).iterdir()) == []


def test_a_half_built_spare_of_a_dead_builder_is_never_taken_and_is_cleaned_up(
    tmp_path: Path, cached: Path
) -> None:
    entry, spare = keep_entry_with_a_spare(tmp_path, cached)
    gone = subprocess.Popen(["true"])
    gone.wait()
    half = entry / "spares" / f".build-{gone.pid}.1-abcdefgh"
    # What a builder killed during its copy leaves: part of a data folder.
    os.rename(entry / "spares" / spare, half)
    shutil.rmtree(half / "data" / "base")
    second = start(cached)
    try:
        assert "from_spare" not in second, second["output"]
        assert second["rows"] == 2000
    finally:
        stop(cached)
    wait_for(lambda: not half.exists() and len(spares(entry)) == 1, "clean-up of the half")


def test_two_starts_at_once_never_share_a_spare(tmp_path: Path, cached: Path) -> None:
    # Two profiles with the same content (the same entry) start at the same moment: a rename
    # gives the spare to one of them; the other copies. Each has its own whole cluster.
    entry, _ = keep_entry_with_a_spare(tmp_path, cached)
    twins = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(tmp_path / "seed.sql", tmp_path / sub / "seed.sql")
        twins.append(write_profile(tmp_path / sub, cached.read_text(), name="spare.yaml"))
    barrier = threading.Barrier(2)
    started: dict[Path, dict[str, Any]] = {}

    def up(profile: Path) -> None:
        barrier.wait()
        started[profile] = start(profile)

    threads = [threading.Thread(target=up, args=(profile,)) for profile in twins]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert len(started) == 2
        assert [the_entry(tmp_path)] == [entry]
        assert all(details["rows"] == 2000 for details in started.values())
        taken = [details for details in started.values() if details.get("from_spare")]
        assert 1 <= len(taken) <= 2  # a second only if the next spare was built in between
        folders = {Path(details["data_dir"]) for details in started.values()}
        assert len({folder.stat().st_ino for folder in folders}) == 2
    finally:
        for profile in twins:
            stop(profile)
    wait_for(lambda: len(spares(entry)) == 1 and not builds(entry), "one spare afterwards")
