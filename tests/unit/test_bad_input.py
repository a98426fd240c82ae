"""Broken profiles: one clear error naming file and key, exit code 2, nothing started or written.

A property test feeds random YAML documents to the loader: the only exception that may ever
escape is envctl's own ProfileError.
"""

from __future__ import annotations

import contextlib
import os
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


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=200))
def test_random_text_only_ever_raises_profile_errors(text: str) -> None:
    with contextlib.suppress(ProfileError):
        parse_profile(text, Path("/tmp/random.yaml"))


def test_merge_keys_may_override_but_written_keys_may_not_repeat(tmp_path: Path) -> None:
    text = "name: x\npostgres:\n  settings:\n    base: &base {work_mem: 1MB, max_connections: 20}\n"
    merged = "name: x\npostgres:\n  settings: &s {work_mem: 1MB}\n  roles: []\n"
    assert parse_profile(merged, tmp_path / "p.yaml").postgres.settings == {"work_mem": "1MB"}
    with_merge = (
        "name: x\nenv:\n  vars:\n    <<: &v {A: '{url}'}\n    A: '{host}'\n    B: '{port}'\n"
    )
    assert parse_profile(with_merge, tmp_path / "p.yaml").env.vars == {
        "A": "{host}",
        "B": "{port}",
    }
    with pytest.raises(ProfileError, match="set twice"):
        parse_profile(text + "    base: 2\n", tmp_path / "p.yaml")


def test_floats_written_in_a_profile_still_validate_as_numbers(tmp_path: Path) -> None:
    text = "name: x\npostgres:\n  version: 16.4\n  startup_timeout: 2.5\n  settings: {a.b: 0.5}\n"
    pg = parse_profile(text, tmp_path / "p.yaml").postgres
    assert (pg.version, pg.startup_timeout, pg.server_settings()["a.b"]) == ("16.4", 2.5, "0.5")


def _read_only_folder(tmp_path: Path) -> Path:
    # Root writes in any folder whatever its mode: for root, a read-only mount stands in.
    if os.geteuid() != 0:
        folder = tmp_path / "readonly"
        folder.mkdir(mode=0o555)
        return folder
    for folder in (Path("/proc/sys"), Path("/sys")):
        if folder.is_dir() and not os.access(folder, os.W_OK):
            return folder
    pytest.skip("running as root without a read-only mount")


def test_an_env_file_in_a_read_only_folder_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    readonly = _read_only_folder(tmp_path)
    before = sorted(readonly.iterdir())
    profile = tmp_path / "p.yaml"
    profile.write_text(f"name: x\nenv:\n  file: {readonly}/envctl.env.test\n")
    state = tmp_path / "state"
    env = {
        "ENVCTL_STATE_DIR": str(state),
        "PATH": "/usr/bin:/bin",
        "DOCKER_HOST": "tcp://127.0.0.1:9",
    }
    for command in ("validate", "up"):
        result = subprocess.run(
            [sys.executable, "-m", "provisioner", command, str(profile)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert "is not writable" in result.stderr and str(readonly) in result.stderr
    assert sorted(readonly.iterdir()) == before
    assert not state.exists()


def test_doctor_reads_an_env_file_with_a_byte_that_is_not_utf8(tmp_path: Path) -> None:
    env_file = tmp_path / ".env.test"
    env_file.write_bytes(b"# caf\xe9\nDATABASE_URL=postgresql://u:p@127.0.0.1:9/db\n")
    result = subprocess.run(
        [sys.executable, "-m", "provisioner", "doctor", "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "tcp://127.0.0.1:9"},
        cwd=ROOT,
        timeout=120,
    )
    assert "Traceback" not in result.stderr
    assert "cannot be read" not in result.stderr
    assert f"{env_file}: 1 variable" in result.stderr


def test_the_repeat_option_has_the_profiles_cap(tmp_path: Path) -> None:
    from provisioner.profile import MAX_REPEAT, TestConfig

    assert TestConfig.model_fields["repeat"].metadata[-1].le == MAX_REPEAT


fuzz_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "{url}",
            "{port:d}",
            "{url!r}",
            "{host:%}",
            "{url:>999999999}",
            "{",
            "}}",
            "{0}",
            "{url[0]}",
            "${HOME}",
            "${A:-${B}}",
            "$$",
            "template0",
            "postgres",
            "/dev/null",
            "missing.sql",
            "auto",
            "16.10",
            "é" * 40,
            "x" * 70_000,
        ]
    ),
)
_FUZZ_KEYS = {
    "postgres": [
        "version",
        "port",
        "host",
        "user",
        "password",
        "database",
        "settings",
        "seed",
        "roles",
        "ssl",
        "startup_timeout",
        "extensions",
    ],
    "env": ["file", "preset", "vars"],
    "test": ["command", "env", "repeat", "timeout", "workdir", "junit"],
}
fuzz_profiles = st.fixed_dictionaries(
    {},
    optional={
        section: st.dictionaries(
            st.sampled_from(keys),
            st.one_of(
                fuzz_values,
                st.lists(fuzz_values, max_size=3),
                st.dictionaries(
                    st.sampled_from(["A", "work_mem", "port", "unix_socket_directories", "B C"]),
                    fuzz_values,
                    max_size=3,
                ),
            ),
            max_size=4,
        )
        for section, keys in _FUZZ_KEYS.items()
    },
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=fuzz_profiles, duplicate=st.booleans())
def test_validate_of_any_profile_passes_or_gives_envctls_own_error(
    tmp_path: Path, document: dict[str, object], duplicate: bool
) -> None:
    """The loader and validate's checks before a start: exit 0 or 2, never an exception."""
    from typer.testing import CliRunner

    from provisioner.cli import app

    text = yaml.safe_dump({"name": "fuzz", **document}, allow_unicode=True)
    if duplicate and "\n" in text.strip():
        text += text.splitlines()[-1] + "\n"
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 2), (text[:500], result.output[-1000:])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


def test_an_unknown_key_named_like_a_type_is_named_in_the_error(tmp_path: Path) -> None:
    # Found by the property test: pydantic's union branch names ("int") are also keys.
    for text in ("int: 1\n", "name: x\npostgres:\n  str: 1\n"):
        with pytest.raises(ProfileError, match="unknown key"):
            parse_profile(text, tmp_path / "p.yaml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300))
def test_validate_of_any_text_passes_or_gives_envctls_own_error(text: str) -> None:
    import tempfile

    from typer.testing import CliRunner

    from provisioner.cli import app

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "any.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 2), (text, result.output[-1000:])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
