"""Profile loading: valid profiles resolve, every mistake names file, key, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import ProfileError
from provisioner.profile import load_profile, parse_profile

PROFILES = Path(__file__).parents[2] / "profiles"


def load(tmp_path: Path, text: str, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_profile(path)


def error_of(tmp_path: Path, text: str) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        load(tmp_path, text)
    return info.value


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_profiles_are_valid(path: Path) -> None:
    assert load_profile(path).name


def test_defaults_are_secure_and_test_friendly(tmp_path: Path) -> None:
    profile = load(tmp_path, "name: demo\n")
    pg = profile.postgres
    assert pg.host == "127.0.0.1"
    assert pg.password is None  # random per environment
    assert pg.port == "auto"
    assert pg.server_settings() == {
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }


def test_durable_profile_keeps_fsync_and_user_settings_win(tmp_path: Path) -> None:
    profile = load(
        tmp_path,
        "name: d\npostgres:\n  durable: true\n"
        "  settings:\n    max_connections: 20\n    jit: false\n",
    )
    assert profile.postgres.server_settings() == {"max_connections": "20", "jit": "off"}


def test_relative_paths_resolve_against_the_profile_folder(tmp_path: Path) -> None:
    sub = tmp_path / "profiles"
    sub.mkdir()
    profile = load(sub, "name: r\nenv:\n  file: ../app/.env.test\ntest:\n  workdir: ../app\n")
    assert profile.env_file == (tmp_path / "app" / ".env.test").resolve()
    assert profile.workdir == (tmp_path / "app").resolve()


def test_numeric_versions_are_read_as_text(tmp_path: Path) -> None:
    assert load(tmp_path, "name: v\npostgres:\n  version: 16.4\n").postgres.version == "16.4"
    assert load(tmp_path, "name: v\npostgres:\n  version: 15\n").postgres.major == 15


def test_image_template_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = load(tmp_path, "name: i\npostgres:\n  version: '16.4'\n")
    monkeypatch.delenv("ENVCTL_POSTGRES_IMAGE", raising=False)
    assert profile.postgres.resolved_image() == "postgres:16.4"
    monkeypatch.setenv("ENVCTL_POSTGRES_IMAGE", "mirror.example/postgres:{major}")
    assert profile.postgres.resolved_image() == "mirror.example/postgres:16"
    explicit = load(tmp_path, "name: i\npostgres:\n  image: custom/pg:1\n")
    assert explicit.postgres.resolved_image() == "custom/pg:1"


def test_bad_image_template_is_a_profile_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_POSTGRES_IMAGE", "pg:{nope}")
    with pytest.raises(ProfileError, match="ENVCTL_POSTGRES_IMAGE"):
        load(tmp_path, "name: i\n").postgres.resolved_image()


def test_ssl_shorthand_string_is_accepted(tmp_path: Path) -> None:
    assert load(tmp_path, "name: s\npostgres:\n  ssl: require\n").postgres.ssl.mode == "require"


def test_unknown_key_suggests_the_right_one_with_file_and_line(tmp_path: Path) -> None:
    error = error_of(tmp_path, "name: t\npostgres:\n  version: '16'\n  prot: 5432\n")
    assert "p.yaml, line 4" in error.message
    assert "postgres.prot" in error.message
    assert error.hint == "did you mean 'port'?"


def test_unknown_top_level_key_lists_known_keys_when_nothing_is_close(tmp_path: Path) -> None:
    error = error_of(tmp_path, "name: t\nzzz: 1\n")
    assert "unknown key 'zzz'" in error.message
    assert "postgres" in (error.hint or "")


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    error = error_of(tmp_path, "name: t\npostgres:\n  port: [1, 2]\n")
    assert "line 3" in error.message and "postgres.port" in error.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: t\npostgres:\n  port: 70000\n", "out of range"),
        ("name: t\npostgres:\n  port: 0\n", "out of range"),
        ("name: t\npostgres:\n  version: '9'\n", "not supported"),
        ("name: t\npostgres:\n  version: latest\n", "not a Postgres version"),
        ("name: t\npostgres:\n  host: example.com\n", "not an IP address"),
        ("name: t\npostgres:\n  password: ''\n", "empty password"),
        ('name: t\npostgres:\n  password: "a\\nb"\n', "control characters"),
        ("name: t\npostgres:\n  ssl: sometimes\n", "postgres.ssl.mode"),
        ("name: t\npostgres:\n  ssl:\n    client_cert: true\n", "client_cert"),
        (
            "name: t\npostgres:\n  ssl:\n    mode: prefer\n    client_cert: true\n",
            "not prefer",
        ),
        ("name: t\npostgres:\n  settings:\n    'bad key': 1\n", "not a server setting"),
        ("name: t\nenv:\n  preset: medusaa\n", "did you mean 'medusa'"),
        ("name: t\nenv:\n  vars:\n    URL: '{urll}'\n", "did you mean '{url}'"),
        ("name: t\nenv:\n  vars:\n    1BAD: x\n", "not a valid environment variable"),
        ("name: 'Bad Name'\n", "not a valid name"),
        ("name: t\ntest:\n  command: []\n", "empty"),
        ("- just\n- a list\n", "not a list"),
        ("name: t\npostgres: [\n", "not valid YAML"),
    ],
)
def test_bad_profiles_give_one_clear_error(tmp_path: Path, text: str, fragment: str) -> None:
    error = error_of(tmp_path, text)
    assert str(tmp_path / "p.yaml") in error.message
    assert fragment in error.message


def test_missing_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no such profile"):
        load_profile(tmp_path / "absent.yaml")


def test_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    assert load(tmp_path, "postgres: {}\n", name="My Profile.yaml").name == "my-profile"


def test_env_id_differs_for_profiles_with_the_same_name_in_different_folders(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = parse_profile("name: same\n", tmp_path / "a" / "p.yaml")
    second = parse_profile("name: same\n", tmp_path / "b" / "p.yaml")
    assert first.env_id != second.env_id
    assert first.env_id.startswith("same-")


BASE_WITH_VALUES = """\
name: base
postgres:
  version: '17'
  port: 55432
  settings: {work_mem: 64MB, jit: 'off'}
  ssl: require
env:
  file: .env.base
  vars: {KEEP: '{url}', DROP: '{host}'}
test:
  env: {PGTESTNOSSL: '1', OTHER: x}
  container: {image: node:20, env: {A: '1', B: '2'}}
"""


def test_null_clears_an_inherited_key_at_every_level(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE_WITH_VALUES)
    profile = load(
        tmp_path,
        "extends: base.yaml\nname: child\n"
        "postgres:\n  port: null\n  settings: {jit: null}\n  ssl: {mode: null}\n"
        "env:\n  vars: {DROP: null}\n"
        "test:\n  env: {PGTESTNOSSL: null}\n  container: {env: {B: null}}\n",
    )
    pg = profile.postgres
    assert (pg.version, pg.port, pg.settings) == ("17", "auto", {"work_mem": "64MB"})
    assert pg.ssl.mode == "disable"  # the default again
    assert profile.env.vars == {"KEEP": "{url}"}
    assert profile.test.env == {"OTHER": "x"}
    assert profile.test.container is not None and profile.test.container.env == {"A": "1"}


def test_null_where_null_is_a_value_keeps_its_meaning(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE_WITH_VALUES)
    profile = load(tmp_path, "extends: base.yaml\nenv:\n  file: null\ntest:\n  container: null\n")
    assert profile.env.file is None  # writes no env file, not the default .env.test
    assert profile.test.container is None
