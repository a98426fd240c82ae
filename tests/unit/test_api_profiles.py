"""Profiles for people and editors: the JSON Schema, `extends:`, `${VAR}`s and overrides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

import provisioner
from provisioner.errors import ProfileError
from provisioner.profile import Profile, load_profile
from provisioner.schema import SCHEMA_ID, profile_json_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
SCHEMA_FILE = PROFILES / "envctl.schema.json"
SCHEMA_LINE = "# yaml-language-server: $schema=./envctl.schema.json"
EDITOR_FILES = [*sorted(PROFILES.glob("*.yaml")), ROOT / "tests" / "sample_project" / "envctl.yaml"]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error_of(path: Path, overrides: dict[str, object] | None = None) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        load_profile(path, overrides)
    return info.value


def schema_errors(document: object) -> list[str]:
    validator = jsonschema.Draft202012Validator(profile_json_schema())
    return [error.message for error in validator.iter_errors(document)]


# The schema


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "profiles/envctl.schema.json is out of date: run "
        "`python -m provisioner.schema > profiles/envctl.schema.json`"
    )


def test_the_schema_names_its_dialect_and_a_stable_id_for_schemastore() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert committed["$id"] == SCHEMA_ID
    assert SCHEMA_ID.startswith("https://") and SCHEMA_ID.endswith(".json")


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text()))


@pytest.mark.parametrize("path", EDITOR_FILES, ids=lambda p: p.name)
def test_shipped_profiles_satisfy_the_schema_and_name_it_first(path: Path) -> None:
    assert schema_errors(yaml.safe_load(path.read_text())) == []
    assert path.read_text().splitlines()[0].startswith("# yaml-language-server: $schema=")
    if path.parent == PROFILES:
        assert path.read_text().splitlines()[0] == SCHEMA_LINE


def test_the_schema_accepts_the_shorthands_the_loader_accepts() -> None:
    document = {
        "extends": "base.yaml",
        "postgres": {
            "version": 16,
            "port": "${PG_PORT:-55432}",
            "ssl": "require",
            "roles": ["app", {"name": "owner", "login": False}],
            "seed": ["schema.sql", {"sql": "select 1"}],
            "startup_timeout": "${TIMEOUT}",
        },
        "env": {"preset": "medusa"},
    }
    assert schema_errors(document) == []


@pytest.mark.parametrize(
    "document",
    [
        {"postgres": {"prot": 5432}},
        {"postgres": {"port": "eighty"}},
        {"postgres": {"ssl": "sometimes"}},
        {"env": {"preset": "nope"}},
        {"runtime": "vm"},
        {"path": "/etc"},
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(document: object) -> None:
    assert schema_errors(document)


def test_the_schema_does_not_require_a_name() -> None:
    assert "name" not in profile_json_schema().get("required", [])
    assert schema_errors({}) == []


# extends


def test_extends_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    write(
        tmp_path,
        "base.yaml",
        "name: base\npostgres:\n  version: '15'\n  database: shop\n"
        "  settings: {work_mem: 8MB, jit: false}\n  extensions: [pgcrypto, citext]\n"
        "env:\n  preset: [url, libpq]\n",
    )
    child = write(
        tmp_path,
        "ci.yaml",
        "extends: base.yaml\nname: ci\npostgres:\n  settings: {jit: true}\n"
        "  extensions: [hstore]\nenv:\n  file: null\n",
    )
    profile = load_profile(child)
    assert profile.name == "ci"
    assert profile.postgres.version == "15"
    assert profile.postgres.database == "shop"
    assert profile.postgres.settings == {"work_mem": "8MB", "jit": True}
    assert profile.postgres.extensions == ["hstore"]
    assert profile.env.preset == ["url", "libpq"]
    assert profile.env_file is None  # null replaces the base's value too
    assert profile.path == child.resolve()


def test_extends_chains_and_the_nearest_profile_wins(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "postgres:\n  version: '15'\n  user: a\n  database: a\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\npostgres:\n  user: b\n  database: b\n")
    c = write(tmp_path, "c.yaml", "extends: b.yaml\npostgres:\n  database: c\n")
    pg = load_profile(c).postgres
    assert (pg.version, pg.user, pg.database) == ("15", "b", "c")


def test_the_name_defaults_to_the_extending_files_name(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "postgres: {}\n")
    assert load_profile(write(tmp_path, "local.yaml", "extends: base.yaml\n")).name == "local"


def test_relative_paths_in_a_base_resolve_against_the_extending_profile(tmp_path: Path) -> None:
    write(
        tmp_path,
        "shared/base.yaml",
        "env:\n  file: .env.test\npostgres:\n  seed: [seed/schema.sql]\n",
    )
    child = write(tmp_path, "app/envctl.yaml", "extends: ../shared/base.yaml\n")
    profile = load_profile(child)
    assert profile.env_file == (tmp_path / "app" / ".env.test").resolve()
    assert profile.folder == (tmp_path / "app").resolve()
    assert profile.postgres.seed[0].path == Path("seed/schema.sql")


def test_a_base_extends_relative_to_its_own_folder(tmp_path: Path) -> None:
    write(tmp_path, "shared/root.yaml", "postgres:\n  database: from_root\n")
    write(tmp_path, "shared/base.yaml", "extends: root.yaml\n")
    child = write(tmp_path, "app/p.yaml", "extends: ../shared/base.yaml\n")
    assert load_profile(child).postgres.database == "from_root"


def test_a_missing_base_names_the_file_the_key_and_the_line(tmp_path: Path) -> None:
    child = write(tmp_path, "p.yaml", "name: p\nextends: nope.yaml\n")
    error = error_of(child)
    assert f"{child}, line 2: extends: no such profile" in error.message
    assert "nope.yaml" in error.message
    assert error.hint and "relative to the profile" in error.hint


def test_an_extends_cycle_names_the_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    error = error_of(a)
    assert "extends: a cycle" in error.message
    assert str(tmp_path / "a.yaml") in error.message and str(tmp_path / "b.yaml") in error.message


def test_a_profile_that_extends_itself_is_a_cycle(tmp_path: Path) -> None:
    assert "a cycle" in error_of(write(tmp_path, "p.yaml", "extends: p.yaml\n")).message


@pytest.mark.parametrize("value", ["[a.yaml]", "1", "''", "{file: a.yaml}"])
def test_extends_must_name_one_file(tmp_path: Path, value: str) -> None:
    error = error_of(write(tmp_path, "p.yaml", f"extends: {value}\n"))
    assert "line 1: extends: must be the path of another profile" in error.message


def test_a_base_that_is_a_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    assert "is a folder" in error_of(write(tmp_path, "p.yaml", "extends: base\n")).message


def test_broken_yaml_in_a_base_names_the_base(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", "postgres: [\n")
    error = error_of(write(tmp_path, "p.yaml", "extends: base.yaml\n"))
    assert str(base) in error.message and "not valid YAML" in error.message


def test_an_invalid_key_inherited_from_a_base_names_the_base_and_its_line(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", "name: b\npostgres:\n  version: '15'\n  prot: 1\n")
    error = error_of(write(tmp_path, "p.yaml", "extends: base.yaml\npostgres:\n  user: u\n"))
    assert f"{base}, line 4: unknown key 'postgres.prot'" in error.message
    assert error.hint == "did you mean 'port'?"


def test_an_invalid_value_the_child_sets_names_the_child(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "postgres:\n  port: 5432\n")
    child = write(tmp_path, "p.yaml", "extends: base.yaml\n\npostgres:\n  port: 70000\n")
    error = error_of(child)
    assert f"{child}, line 4: postgres.port: port 70000 is out of range" in error.message


def test_a_list_the_child_replaces_is_reported_in_the_child(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", "postgres:\n  seed:\n    - a.sql\n    - b.sql\n    - c.sql\n")
    child = write(tmp_path, "p.yaml", "extends: base.yaml\npostgres:\n  seed:\n    - {pth: x}\n")
    assert f"{child}, line 4" in error_of(child).message


# ${VAR}


def test_variables_are_filled_in_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_PORT", "55432")
    monkeypatch.setenv("PG_PASSWORD", "s3cret")
    monkeypatch.setenv("EMPTY", "")
    monkeypatch.delenv("UNSET_DB", raising=False)
    path = write(
        tmp_path,
        "p.yaml",
        "postgres:\n  port: ${PG_PORT}\n  password: pre-${PG_PASSWORD}-post\n"
        "  database: ${UNSET_DB:-fallback}\n  user: ${EMPTY:-nobody}\n"
        "test:\n  command: [echo, '${PG_PORT}', '$$HOME', 'a $ b', '$${PG_PORT}']\n",
    )
    profile = load_profile(path)
    assert profile.postgres.port == 55432
    assert profile.postgres.password == "pre-s3cret-post"
    assert profile.postgres.database == "fallback"
    assert profile.postgres.user == "nobody"  # :- also replaces an empty value, as in the shell
    assert profile.test.command == ["echo", "55432", "$HOME", "a $ b", "${PG_PORT}"]


def test_an_unset_variable_names_the_key_path_the_variable_and_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    path = write(tmp_path, "p.yaml", "name: p\npostgres:\n  password: ${DB_PASSWORD}\n")
    error = error_of(path)
    assert f"{path}, line 3: postgres.password: ${{DB_PASSWORD}} is not set" in error.message
    assert error.hint and "${DB_PASSWORD:-" in error.hint


def test_an_unset_variable_in_a_list_names_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    path = write(tmp_path, "p.yaml", "test:\n  command:\n    - run\n    - ${NOPE}\n")
    assert "line 4: test.command.1: ${NOPE} is not set" in error_of(path).message


def test_an_unset_variable_in_a_base_names_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    base = write(tmp_path, "base.yaml", "postgres:\n  image: ${NOPE}\n")
    error = error_of(write(tmp_path, "p.yaml", "extends: base.yaml\n"))
    assert f"{base}, line 2: postgres.image: ${{NOPE}} is not set" in error.message


def test_a_base_value_the_child_replaces_needs_no_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    write(tmp_path, "base.yaml", "postgres:\n  password: ${NOPE}\n")
    child = write(tmp_path, "p.yaml", "extends: base.yaml\npostgres:\n  password: fixed\n")
    assert load_profile(child).postgres.password == "fixed"


@pytest.mark.parametrize("value", ["'${}'", "'${1ABC}'", "'${A-B}'", "'${A:default}'", "'x${A'"])
def test_a_malformed_reference_is_an_error(tmp_path: Path, value: str) -> None:
    error = error_of(write(tmp_path, "p.yaml", f"postgres:\n  password: {value}\n"))
    assert "line 2: postgres.password:" in error.message
    assert "is not a variable reference" in error.message
    assert error.hint and "$$" in error.hint


def test_keys_are_never_interpolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY", "work_mem")
    path = write(tmp_path, "p.yaml", "postgres:\n  settings:\n    ${KEY}: 8MB\n")
    assert "not a server setting" in error_of(path).message


def test_a_value_that_comes_from_a_variable_is_still_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_PORT", "99999")
    path = write(tmp_path, "p.yaml", "postgres:\n  port: ${PG_PORT}\n")
    assert f"{path}, line 2: postgres.port: port 99999 is out of range" in error_of(path).message


# Overrides


def test_overrides_replace_keys_before_validation(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "postgres:\n  version: '16'\n  port: 5432\n")
    profile = load_profile(
        path, {"postgres.port": 55432, "postgres.version": "17", "env.file": None}
    )
    assert (profile.postgres.port, profile.postgres.version) == (55432, "17")
    assert profile.env_file is None


def test_a_bad_override_names_the_key_and_the_override(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "postgres:\n  port: 5432\n")
    error = error_of(path, {"postgres.port": 0})
    assert f"{path} (override postgres__port): postgres.port: port 0" in error.message
    unknown = error_of(path, {"postgres.prot": 1})
    assert "unknown key 'postgres.prot'" in unknown.message
    assert unknown.hint == "did you mean 'port'?"


def test_an_override_below_a_value_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "postgres:\n  port: 5432\n")
    assert "postgres.port is not a mapping" in error_of(path, {"postgres.port.x": 1}).message


def test_the_api_turns_double_underscores_into_key_paths(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "name: p\n")
    starting = provisioner.environment(path, postgres__startup_timeout=-1)
    with pytest.raises(ProfileError, match=r"postgres\.startup_timeout"), starting:
        pytest.fail("the profile is invalid: nothing may start")


# The package


def test_the_package_exports_the_api_without_importing_heavy_libraries() -> None:
    code = (
        "import sys, provisioner\n"
        "heavy = {'pydantic', 'cryptography', 'docker', 'psycopg'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert callable(provisioner.environment)\n"
        "from provisioner import environment, RunningEnvironment, ProfileError\n"
        "import provisioner.environments\n"
        "assert provisioner.environment is environment\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
    assert set(provisioner.__all__) <= set(dir(provisioner))


def test_the_profile_model_is_what_the_schema_describes() -> None:
    described = set(profile_json_schema()["properties"]) - {"extends"}
    assert described == set(Profile.model_fields) - {"path", "sources"}
