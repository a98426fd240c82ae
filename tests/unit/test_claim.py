"""The claim that makes one process the starter of an environment is never seen empty.

An empty claim reads as one whose owner died before writing its PID: another start would
take it for stale and tear down the environment being started (seen in CI when two `up`s of
one profile raced).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from provisioner.environments.claim import _create_claim


def test_a_claim_is_seen_with_its_owner_or_not_at_all(tmp_path: Path) -> None:
    seen: list[str] = []
    for attempt in range(300):
        claim = tmp_path / f"claim-{attempt}"
        reading = threading.Event()

        def read_once_it_exists(claim: Path = claim, reading: threading.Event = reading) -> None:
            reading.set()
            while True:
                try:
                    seen.append(claim.read_text())
                    return
                except FileNotFoundError:
                    continue

        reader = threading.Thread(target=read_once_it_exists)
        reader.start()
        reading.wait()
        assert _create_claim(claim)
        reader.join()
    assert set(seen) == {str(os.getpid())}


def test_a_second_claim_fails_and_leaves_the_first_and_no_drafts(tmp_path: Path) -> None:
    claim = tmp_path / "claim"
    assert _create_claim(claim)
    assert not _create_claim(claim)
    assert claim.read_text() == str(os.getpid())
    assert [path.name for path in tmp_path.iterdir()] == ["claim"]
