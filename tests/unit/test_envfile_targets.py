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
@pytest.mark.parametrize("kind", ["fifo", "device", "profile", "base", "seed", "python", "folder"])
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
    elif kind == "base":
        # A base of only comments is a dotenv file too: it is refused as a file envctl reads.
        (tmp_path / "base.yaml").write_text("# shared by every profile\n")
        env_file = "base.yaml"
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
    if kind == "base":
        profile.write_text("extends: base.yaml\n" + profile.read_text())
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


def test_owner_mode_and_hard_links_survive_write_and_restore(tmp_path: Path) -> None:
    from provisioner.envfile import EnvFileGuard

    target = tmp_path / ".env.test"
    original = b"# mine\nAPI_KEY=keep\n"
    target.write_bytes(original)
    os.chmod(target, 0o640)
    if os.geteuid() == 0:
        os.chown(target, 1000, 1000)
    link = tmp_path / "linked.env"
    os.link(target, link)
    before = target.stat()
    state = tmp_path / "state"
    state.mkdir()
    guard = EnvFileGuard(state)

    guard.write(target, {"DATABASE_URL": "postgresql://x"})
    during = target.stat()
    assert b"DATABASE_URL=postgresql://x" in link.read_bytes()  # still one file
    assert (during.st_ino, during.st_mode, during.st_uid, during.st_gid) == (
        before.st_ino,
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )

    guard.restore()
    after = target.stat()
    assert target.read_bytes() == original == link.read_bytes()
    assert (after.st_ino, after.st_mode, after.st_uid, after.st_gid) == (
        before.st_ino,
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )


def test_owner_and_mode_survive_without_hard_links(tmp_path: Path) -> None:
    from provisioner.envfile import EnvFileGuard

    target = tmp_path / ".env.test"
    target.write_bytes(b"A=1\n")
    os.chmod(target, 0o640)
    if os.geteuid() == 0:
        os.chown(target, 1000, 1000)
    before = target.stat()
    state = tmp_path / "state"
    state.mkdir()
    guard = EnvFileGuard(state)
    guard.write(target, {"B": "2"})
    for current in (target.stat(), (guard.restore(), target.stat())[1]):
        assert (current.st_mode, current.st_uid, current.st_gid) == (
            before.st_mode,
            before.st_uid,
            before.st_gid,
        )
    assert target.read_bytes() == b"A=1\n"
