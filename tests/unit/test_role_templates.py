"""Templates that know the profile: `{roles.NAME.name}` and `{roles.NAME.password}`."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.connection import Connection
from provisioner.envfile import render_env
from provisioner.errors import ProfileError
from provisioner.profile import Profile, load_profile
from tests.conftest import envctl, write_profile

ROLES = (
    "name: t\npostgres:\n  roles:\n"
    "    - {name: scram_test, password: s3cret-Scram}\n"
    "    - {name: app.reader, password: r34der}\n"
    "    - nopass\n"
)
CONNECTION = Connection(host="127.0.0.1", port=5555, user="postgres", password="pw", database="d")


def profile_with(tmp_path: Path, variables: str, roles: str = ROLES) -> Profile:
    return load_profile(write_profile(tmp_path, roles + "env:\n  vars:\n" + variables))


def rendered(profile: Profile) -> dict[str, str]:
    return render_env(CONNECTION, [], profile.env.vars, profile.postgres.roles)


def test_a_template_names_a_roles_name_and_password(tmp_path: Path) -> None:
    profile = profile_with(
        tmp_path,
        "    SCRAM_TEST_PGUSER: '{roles.scram_test.name}'\n"
        "    SCRAM_TEST_PGPASSWORD: '{roles.scram_test.password}'\n"
        "    READER_URL: 'postgresql://{roles.app.reader.name}:{roles.app.reader.password}@{host}'\n",
    )
    assert rendered(profile) == {
        "SCRAM_TEST_PGUSER": "scram_test",
        "SCRAM_TEST_PGPASSWORD": "s3cret-Scram",
        "READER_URL": "postgresql://app.reader:r34der@127.0.0.1",
    }


def test_an_unknown_role_is_a_profile_error_naming_it_and_the_key(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as caught:
        profile_with(tmp_path, "    SCRAM_TEST_PGPASSWORD: '{roles.scram_tset.password}'\n")
    error = caught.value
    assert "scram_tset" in error.message
    assert "env.vars.SCRAM_TEST_PGPASSWORD" in error.message
    assert "line 9" in error.message
    assert "did you mean 'scram_test'" in error.message
    assert "scram_test, app.reader, nopass" in (error.hint or "")


def test_validate_refuses_an_unknown_role_with_exit_2(tmp_path: Path) -> None:
    path = write_profile(
        tmp_path, "name: t\nenv:\n  vars:\n    PGPW: '{roles.scram_test.password}'\n"
    )
    result = envctl("validate", str(path))
    assert result.returncode == 2, result.stderr
    assert "'scram_test'" in result.stderr and "postgres.roles" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_role_without_a_password_has_no_password_placeholder(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="'nopass' has no password"):
        profile_with(tmp_path, "    PW: '{roles.nopass.password}'\n")
    assert rendered(profile_with(tmp_path, "    U: '{roles.nopass.name}'\n")) == {"U": "nopass"}


def test_a_role_has_only_name_and_password(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"roles.scram_test.password"):
        profile_with(tmp_path, "    PW: '{roles.scram_test.pass}'\n")


def test_the_node_preset_writes_node_extra_ca_certs_when_there_is_a_ca() -> None:
    with_ca = Connection(
        host="h",
        port=1,
        user="u",
        password="p",
        database="d",
        sslmode="verify-full",
        sslrootcert=Path("/x/ca.crt"),
    )
    values = render_env(with_ca, ["node"], {})
    assert values["NODE_EXTRA_CA_CERTS"] == "/x/ca.crt"
    assert values["PGSSLMODE"] == "verify-full"
    assert "sslrootcert=/x/ca.crt" in values["DATABASE_URL"]
    assert "NODE_EXTRA_CA_CERTS" not in render_env(CONNECTION, ["node"], {})
