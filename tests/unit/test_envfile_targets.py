"""An env file envctl must not write is refused before anything starts, by validate and up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provisioner.envfile import first_foreign_line
from tests.conftest import envctl, write_profile


def _profile(folder: Path, env_file: str, seed: str | None = None) -> Path:
    text = f"name: target\npostgres:\n  version: '15'\nenv:\n  file: {env_file}\n"
    if seed:
        text = text.replace("  version: '15'\n", f"  version: '15'\n  seed: [{seed}]\n")
    return write_profile(folder, text)


@pytest.mark.parametrize("command", ["validate", "up"])
@pytest.mark.parametrize("kind", ["fifo", "device", "profile", "seed", "python", "folder"])
def test_an_env_file_envctl_must_not_write_is_refused(
    tmp_path: Path, command: str, kind: str
) -> None:
    seed = None
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe")
        env_file = "pipe"
    elif kind == "device":
        env_file = "/dev/null"
    elif kind == "profile":
        env_file = "profile.yaml"
    elif kind == "seed":
        (tmp_path / "seed.sql").write_text("CREATE TABLE t (id int);\n")
        seed, env_file = "seed.sql", "seed.sql"
    elif kind == "python":
        (tmp_path / "app.py").write_text("import os\nprint(os.environ)\n")
        env_file = "app.py"
    else:
        (tmp_path / "dir").mkdir()
        env_file = "dir"
    profile = _profile(tmp_path, env_file, seed)
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    result = envctl(command, str(profile), cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "env.file" in result.stderr and str(profile) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert not (tmp_path / "envctl-state" / "envs").exists() or not any(
        (tmp_path / "envctl-state" / "envs").iterdir()
    )


def test_a_dotenv_file_is_accepted(tmp_path: Path) -> None:
    (tmp_path / ".env.test").write_text('# mine\nexport A=1\nB="two\nlines"\n\nC = 3\n')
    result = envctl("validate", str(_profile(tmp_path, ".env.test")), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("A=1\n", None),
        ("# c\n\nexport A='x'\n", None),
        ("A=1\nroot:x:0:0::/root:/bin/sh\n", 2),
        ('A="open\nstill\nclosed"\nB=2\n', None),
        ("import os\n", 1),
    ],
)
def test_first_foreign_line(text: str, line: int | None) -> None:
    assert first_foreign_line(text) == line
