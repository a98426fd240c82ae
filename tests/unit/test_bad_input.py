"""Broken profiles: one clear error naming file and key, exit code 2, nothing started or written.

A property test feeds random YAML documents to the loader: the only exception that may ever
escape is envctl's own ProfileError.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.errors import ProfileError
from provisioner.profile import parse_profile

ROOT = Path(__file__).resolve().parents[2]

# (profile text, a fragment the error must contain)
CORPUS = [
    ("name: x\npostgres: [\n", "not valid YAML"),
    ("name: x\n  postgres: 1\n", "not valid YAML"),
    ("\t- tabs\n", "not valid YAML"),
    ("name: x\npostgres:\n  version: [16]\n", "postgres.version"),
    ("name: x\npostgres:\n  port: eighty\n", "postgres.port"),
    ("name: x\npostgres:\n  port: -1\n", "out of range"),
    ("name: x\npostgres:\n  port: 65536\n", "out of range"),
    ("name: x\npostgres:\n  port: 99999999999999999999999\n", "out of range"),
    ("name: x\npostgres:\n  version: '99'\n", "not supported"),
    ("name: x\npostgres:\n  version: '16.4.1'\n", "not a Postgres version"),
    ("name: x\npostgres:\n  startup_timeout: 1e309\n", "startup_timeout"),
    ("name: x\npostgres:\n  user: " + "u" * 64 + "\n", "postgres.user"),
    ('name: x\npostgres:\n  database: "a\\nb"\n', "control characters"),
    ("name: x\npostgres:\n  host: '0.0.0.0; rm -rf /'\n", "not an IP address"),
    ("name: x\npostgres:\n  settings:\n    'fsync; drop': 'off'\n", "not a server setting"),
    ('name: x\npostgres:\n  settings:\n    work_mem: "1MB\\n-c ssl=off"\n', "control"),
    ("name: x\npostgres:\n  settings:\n    ssl: 'on'\n", "set by envctl"),
    ("name: x\npostgres:\n  settings:\n    hba_file: /etc/passwd\n", "set by envctl"),
    ("name: x\npostgres:\n  settings: [a, b]\n", "postgres.settings"),
    ("name: x\npostgres:\n  ssl: maybe\n", "postgres.ssl"),
    ("name: x\npostgres:\n  seed:\n    - {path: a.sql, sql: 'select 1'}\n", "exactly one"),
    ("name: x\npostgres:\n  seed:\n    - {pth: a.sql}\n", "did you mean 'path'"),
    ("name: x\npostgres:\n  seed:\n    - {path: a, jobs: 0}\n", "jobs"),
    ("name: x\npostgres:\n  seed:\n    - {path: a, owners: steal}\n", "owners"),
    ("name: x\npostgres:\n  locale: 'en_US.UTF-8; touch /tmp/x'\n", "not a locale"),
    ("name: x\npostgres:\n  roles: [{name: ''}]\n", "role name"),
    ("name: x\nenv:\n  vars:\n    'A B': '{url}'\n", "not a valid environment variable"),
    ("name: x\nenv:\n  vars:\n    URL: '{url'\n", "URL"),
    ("name: x\nenv:\n  preset: [libpq, nope]\n", "unknown preset"),
    ("name: x\ntest:\n  timeout: 0\n", "test.timeout"),
    ("name: x\ntest:\n  repeat: 0\n", "test.repeat"),
    ("name: x\ntest:\n  container: {}\n", "test.container.image"),
    ("name: x\nruntime: vm\n", "runtime"),
    ("name: ../../etc\n", "not a valid name"),
    ("name: x\nunknown: 1\n", "unknown key"),
    ("[1, 2, 3]\n", "not a list"),
    ("just a string\n", "not a str"),
    ("name: x\npostgres:\n  port: &a [*a]\n", "postgres.port"),
]


@pytest.mark.parametrize(("text", "fragment"), CORPUS)
def test_each_broken_profile_gives_one_clear_error(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        parse_profile(text, path)
    assert str(path) in info.value.message
    assert fragment in str(info.value)


def test_the_cli_exits_2_without_a_traceback_and_writes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {
        "ENVCTL_STATE_DIR": str(state),
        "PATH": "/usr/bin:/bin",
        "DOCKER_HOST": "tcp://127.0.0.1:9",
    }
    for n, (text, _) in enumerate(CORPUS):
        path = tmp_path / f"broken{n}.yaml"
        writes_env = text.startswith("name") and "\nenv:" not in text
        path.write_text(text + "env:\n  file: out.env\n" if writes_env else text)
        for command in ("validate", "up"):
            result = subprocess.run(
                [sys.executable, "-m", "provisioner", command, str(path)],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                timeout=60,
            )
            assert result.returncode == 2, (text, result.stderr)
            assert "Traceback" not in result.stderr
            assert result.stderr.startswith("error: "), result.stderr
    assert not (tmp_path / "out.env").exists()
    assert not state.exists()


yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "postgres",
                    "env",
                    "test",
                    "version",
                    "port",
                    "ssl",
                    "mode",
                    "seed",
                    "settings",
                    "file",
                    "vars",
                    "preset",
                    "command",
                    "path",
                    "sql",
                    "roles",
                    "x",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=yaml_values)
def test_random_documents_only_ever_raise_profile_errors(document: object) -> None:
    text = yaml.safe_dump(document)
    with contextlib.suppress(ProfileError):
        parse_profile(text, Path("/tmp/random.yaml"))


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_random_text_only_ever_raises_profile_errors(text: str) -> None:
    with contextlib.suppress(ProfileError):
        parse_profile(text, Path("/tmp/random.yaml"))
