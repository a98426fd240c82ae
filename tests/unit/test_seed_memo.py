"""Seed digests remembered by file identity: reused while the file is unchanged, never after."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from provisioner.cache import seed_memo as cache


@pytest.fixture
def seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENVCTL_STATE_DIR", str(tmp_path / "state"))
    # Files written by the test are seconds old only after a sleep; trust them at once.
    monkeypatch.setattr(cache, "RACY_SECONDS", 0.0)
    path = tmp_path / "seed.sql"
    path.write_bytes(b"CREATE TABLE t (n int);\n" * 100)
    return path


def test_a_digest_hashes_name_and_bytes_and_is_remembered_with_the_major(seed: Path) -> None:
    assert cache.remembered_seed(seed) is None
    digest = cache.seed_digest(seed, 15)
    assert digest == hashlib.sha256(b"seed.sql" + seed.read_bytes()).hexdigest()
    entry = cache.remembered_seed(seed)
    assert entry is not None and entry["sha256"] == digest and entry["major"] == 15


def test_one_byte_changed_in_place_with_the_old_mtime_is_not_recognised(seed: Path) -> None:
    first = cache.seed_digest(seed, None)
    before = seed.stat()
    data = bytearray(seed.read_bytes())
    data[0] ^= 1
    seed.write_bytes(bytes(data))
    os.utime(seed, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same mtime
    assert seed.stat().st_size == before.st_size
    assert cache.remembered_seed(seed) is None  # the ctime moved: no program can set it back
    assert cache.seed_digest(seed, None) != first


def test_a_replaced_file_is_not_recognised(seed: Path, tmp_path: Path) -> None:
    cache.seed_digest(seed, None)
    other = tmp_path / "other.sql"
    other.write_bytes(seed.read_bytes())
    os.replace(other, seed)  # what editors do: another inode
    assert cache.remembered_seed(seed) is None


def test_a_file_changed_moments_ago_is_not_remembered(
    seed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel's coarse clock could give a write in the same tick the same times.
    monkeypatch.setattr(cache, "RACY_SECONDS", 2.0)
    cache.seed_digest(seed, None)
    assert cache.remembered_seed(seed) is None


def test_a_directory_dump_is_one_identity_over_its_files(seed: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dump"
    folder.mkdir()
    (folder / "toc.dat").write_bytes(b"toc")
    (folder / "3001.dat").write_bytes(b"data")
    cache.seed_digest(folder, 16)
    assert cache.remembered_seed(folder) is not None
    (folder / "3001.dat").write_bytes(b"DATA")
    assert cache.remembered_seed(folder) is None


def test_a_damaged_memo_is_ignored(seed: Path, tmp_path: Path) -> None:
    memo = tmp_path / "state" / "cache" / "seeds.json"
    memo.parent.mkdir(parents=True)
    memo.write_text("{not json")
    assert cache.remembered_seed(seed) is None
    cache.seed_digest(seed, None)
    assert cache.remembered_seed(seed) is not None
    assert oct(memo.stat().st_mode & 0o777) == "0o600"
