"""The tests' own leak check sees a process left with a test's state folder."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.conftest import processes_of


def test_a_process_left_with_the_state_folder_is_found_and_a_reaped_one_is_not(
    tmp_path: Path,
) -> None:
    state = tmp_path / "envctl-state"
    assert processes_of(state) == []
    env = {**os.environ, "ENVCTL_STATE_DIR": str(state)}
    left = subprocess.Popen(["sleep", "60"], env=env)
    try:
        # Between fork and exec the child still shows the parent's environment: wait for exec.
        deadline = time.monotonic() + 10
        while not processes_of(state) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [p.pid for p in processes_of(state)] == [left.pid]
        assert processes_of(tmp_path / "other") == []
    finally:
        left.kill()
        left.wait()
    assert processes_of(state) == []
