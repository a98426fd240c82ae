"""The bad-input corpus of issue #20: what `up` would refuse, `validate` refuses first.

Each case is a project folder (the profile `p.yaml` and the files it names), a command line,
the exit code and the words of the error. Every case runs through the real CLI, as `validate`
and as `up` (and `run`), and must end in envctl's own one-line error, never a traceback, with
nothing left behind: no state, no new or changed file in the project folder. A few cases also go
through `up` against a real Docker engine (tests/integration/test_bad_input_up.py).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_FILE = "env:\n  file: null\n"


@dataclass(frozen=True)
class Case:
    """One bad input: the files of a project, the command, and what envctl must answer."""

    id: str
    profile: str
    words: tuple[str, ...]
    exit_code: int = 2
    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # name -> what the symlink points at
    args: tuple[str, ...] = ("validate", "p.yaml")


def _chain(depth: int) -> dict[str, str]:
    files = {f"b{n}.yaml": f"extends: b{n + 1}.yaml\n" for n in range(depth)}
    files[f"b{depth}.yaml"] = "name: x\n"
    return files


def _vars(template: str) -> str:
    return f"name: x\nenv:\n  file: null\n  vars:\n    A: '{template}'\n"


CASES = [
    # 3. tracebacks after validate: templates, sizes, seeds
    Case("template-format-spec", _vars("{port:d}"), ("env.vars", "A", "{port:d}", "plain")),
    Case("template-conversion", _vars("{url!x}"), ("env.vars", "A", "{url!x}")),
    Case("template-percent", _vars("x{host:%}"), ("env.vars", "{host:%}", "x{host:%}")),
    Case("template-huge-width", _vars("{url:>99999999999}"), ("{url:>99999999999}",)),
    Case("variable-over-128k", _vars("x" * 140_000), ("env.vars", "A", "128 KiB")),
    Case("rendered-over-128k", _vars("{url}" * 3000), ("A would be", "128 KiB")),
    Case(
        "test-env-over-128k",
        f"name: x\n{NO_FILE}test:\n  env:\n    BIG: '{'y' * 140_000}'\n",
        ("test.env", "BIG", "128 KiB"),
    ),
    Case(
        "setting-over-cap",
        f"name: x\n{NO_FILE}postgres:\n  settings:\n    work_mem: '{'1' * 200_000}'\n",
        ("postgres.settings", "work_mem", "8 KiB"),
    ),
    Case(
        "seed-symlink-loop",
        f"name: x\n{NO_FILE}postgres:\n  seed: [loop.sql]\n",
        ("postgres.seed[0]", "loop.sql", "symlink loop"),
        links={"loop.sql": "loop.sql"},
    ),
    # 4. wrong values let through
    Case("port-true", "name: x\npostgres:\n  port: true\n", ("postgres.port", "not a port")),
    Case(
        "version-16-10",
        "name: x\npostgres:\n  version: 16.10\n",
        ("postgres.version", '"16.10"', "quotes"),
    ),
    Case(
        "duplicate-key",
        "name: x\npostgres:\n  port: 5000\n  user: u\n  port: 6000\n",
        ("line 5", "postgres.port", "twice", "line 3"),
    ),
    Case(
        "nested-default",
        "name: x\npostgres:\n  password: ${ENVCTL_UNSET_A:-${ENVCTL_UNSET_B}}\n",
        ("postgres.password", "default cannot hold"),
    ),
    Case(
        "seed-missing",
        f"name: x\n{NO_FILE}postgres:\n  seed: [nowhere.sql]\n",
        ("postgres.seed[0]", "nowhere.sql", "does not exist"),
    ),
    Case(
        "seed-device",
        f"name: x\n{NO_FILE}postgres:\n  seed: [/dev/null]\n",
        ("postgres.seed[0]", "not a regular file"),
    ),
    Case(
        "database-64-bytes",
        "name: x\npostgres:\n  database: " + "é" * 32 + "\n",
        ("postgres.database", "63 bytes"),
    ),
    Case(
        "user-64-bytes",
        "name: x\npostgres:\n  user: " + "u" * 64 + "\n",
        ("postgres.user", "63 bytes"),
    ),
    Case(
        "role-64-bytes",
        "name: x\npostgres:\n  roles: [" + "ü" * 32 + "]\n",
        ("postgres.roles", "63 bytes"),
    ),
    *(
        Case(
            f"database-{name}",
            f"name: x\npostgres:\n  database: {name}\n",
            ("postgres.database", name, "envctl needs"),
        )
        for name in ("template0", "template1", "postgres")
    ),
    *(
        Case(
            f"setting-{name}",
            f"name: x\npostgres:\n  settings:\n    {name}: /tmp\n",
            ("postgres.settings", name, "set by envctl"),
        )
        for name in (
            "unix_socket_directories",
            "data_directory",
            "hba_file",
            "listen_addresses",
            "port",
            "config_file",
        )
    ),
    Case(
        "repeat-too-many",
        f"name: x\n{NO_FILE}",
        ("--repeat 1000000000", "1000"),
        args=("run", "p.yaml", "--repeat", "1000000000", "--", "true"),
    ),
    Case(
        "profile-over-1mb",
        "name: x\n" + ("# " + "z" * 98 + "\n") * 11_000,
        ("p.yaml", "1 MB"),
    ),
    Case(
        "extends-33-deep",
        "extends: b0.yaml\n",
        ("extends", "more than 32"),
        files=_chain(40),
    ),
    Case(
        "extends-1500-deep",
        "extends: b0.yaml\n",
        ("extends", "more than 32"),
        files=_chain(1500),
    ),
    Case(
        "extends-symlink-loop",
        "extends: base.yaml\n",
        ("extends", "base.yaml", "symlink loop"),
        links={"base.yaml": "base.yaml"},
    ),
    Case(
        "env-file-under-a-file",
        "name: x\nenv:\n  file: notes.txt/.env.test\n",
        ("env.file", "notes.txt", "not a folder"),
        files={"notes.txt": "hello\n"},
    ),
]


def make_project(folder: Path, case: Case) -> Path:
    """Write the case's files into `folder`; return the profile."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p.yaml").write_text(case.profile, encoding="utf-8")
    for name, text in case.files.items():
        (folder / name).write_text(text, encoding="utf-8")
    for name, target in case.links.items():
        os.symlink(target, folder / name)
    return folder / "p.yaml"


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under `folder` with a digest of its content (symlinks by their target)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path)] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[str(path)] = "folder"
    return found


def run_envctl(
    args: tuple[str, ...], cwd: Path, state: Path, docker_host: str | None = "tcp://127.0.0.1:9"
) -> subprocess.CompletedProcess[str]:
    """The real CLI; by default with an engine that never answers, so nothing could start."""
    env = {**os.environ, "ENVCTL_STATE_DIR": str(state)}
    env.pop("ENVCTL_UNSET_A", None)
    env.pop("ENVCTL_UNSET_B", None)
    if docker_host is not None:
        env["DOCKER_HOST"] = docker_host
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def assert_refused(result: subprocess.CompletedProcess[str], case: Case) -> None:
    """envctl's own error: the exit code, one `error:` line with the words, no traceback."""
    assert result.returncode == case.exit_code, (case.id, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    message = result.stderr
    assert message.startswith("error: ") or "Invalid value" in message, message[-2000:]
    for word in case.words:
        assert word in message, (case.id, word, message[:2000])


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_validate_refuses_what_up_would_refuse(case: Case, tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_project(project, case)
    before = snapshot(project)
    state = tmp_path / "state"
    assert_refused(run_envctl(case.args, project, state), case)
    assert snapshot(project) == before
    assert not state.exists()


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.args[0] == "validate"], ids=lambda c: f"up-{c.id}"
)
def test_up_refuses_the_same_before_anything_starts(case: Case, tmp_path: Path) -> None:
    # The engine never answers: had `up` got as far as asking for it, the exit code would be 3.
    project = tmp_path / "project"
    make_project(project, case)
    before = snapshot(project)
    state = tmp_path / "state"
    assert_refused(run_envctl(("up", "p.yaml"), project, state), case)
    assert snapshot(project) == before
    assert not state.exists()
