"""Shell completion: the script typer writes, sourced in a real bash, completes envctl's words."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ENVCTL = str(Path(sys.executable).with_name("envctl"))


@pytest.mark.parametrize(("typed", "expected"), [("sta", "status"), ("re", "repro reset")])
def test_bash_completes_commands(typed: str, expected: str) -> None:
    assert shutil.which("bash"), "bash is part of every machine envctl is tested on"
    script = subprocess.run(
        [ENVCTL, "--show-completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    assert "complete" in script
    probe = (
        f"{script}\n"
        f"COMP_WORDS=(envctl {typed}); COMP_CWORD=1; _envctl_completion envctl {typed} envctl; "
        'echo "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{Path(ENVCTL).parent}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert sorted(out.stdout.split()) == sorted(expected.split()), out.stderr
