"""Progress of long steps: a rich spinner on a terminal, plain lines in CI logs and pipes."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner.progress import interactive, progress

ROOT = Path(__file__).resolve().parents[2]
STEP = """
import time
from provisioner.progress import progress
with progress("restoring big.dump") as shown:
    print("live" if shown.live else "plain", flush=True)
    shown.show("restoring big.dump: 3 s, loading orders (1,000 rows so far)")
    time.sleep(0.5)
print("done", flush=True)
"""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _environ(**changes: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "TERM")}
    environ.update({"TERM": "xterm-256color", "PYTHONPATH": str(ROOT), **changes})
    return environ


def _on_a_terminal(environ: dict[str, str]) -> str:
    """The script's output when stdout and stderr are a pseudo-terminal."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-c", STEP],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=environ,
        close_fds=True,
    )
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert child.wait(timeout=30) == 0, output
    return output.decode(errors="replace")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TERM": "xterm"}, True),
        ({"TERM": "xterm", "CI": "true"}, False),
        ({"TERM": "xterm", "CI": "0"}, True),
        ({"TERM": "xterm", "NO_COLOR": ""}, False),
        ({"TERM": "dumb"}, False),
    ],
)
def test_only_a_terminal_outside_ci_gets_live_progress(
    environ: dict[str, str], expected: bool
) -> None:
    assert interactive(_Terminal(), environ) is expected
    assert interactive(io.StringIO(), environ) is False


def test_a_terminal_shows_a_rich_spinner_that_goes_away() -> None:
    output = _on_a_terminal(_environ())
    assert "live" in output
    assert "\x1b[?25l" in output  # rich's live display hides the cursor while it spins
    assert "loading orders (1,000 rows so far)" in output
    assert output.rstrip().endswith("done")


def test_ci_on_a_terminal_gets_plain_lines() -> None:
    output = _on_a_terminal(_environ(CI="true"))
    assert "plain" in output
    assert "\x1b[" not in output
    assert "restoring big.dump: 3 s, loading orders (1,000 rows so far)" in output


def test_a_pipe_gets_plain_lines_in_order() -> None:
    result = subprocess.run(
        [sys.executable, "-c", STEP],
        capture_output=True,
        text=True,
        env=_environ(),
        timeout=30,
        check=True,
    )
    assert result.stdout.split() == ["plain", "done"]
    assert result.stderr.splitlines() == [
        "restoring big.dump",
        "restoring big.dump: 3 s, loading orders (1,000 rows so far)",
    ]


def test_plain_progress_can_leave_its_first_line_to_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")  # plain even under `pytest -s` in a terminal
    lines: list[str] = []
    with progress("pulling", lines.append, plain_first=False) as shown:
        shown.show("half")
    assert lines == ["half"]
