"""`envctl doctor` against real servers: each broken env file is diagnosed with cause and fix."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.doctor import Check, run_doctor
from provisioner.environments import Environment, environment
from provisioner.profile import Profile, load_profile
from tests.conftest import TEST_IMAGE_TEMPLATE, write_profile

pytestmark = pytest.mark.docker


def make_profile(
    tmp_path: Path,
    *,
    ssl: str = "disable",
    preset: str = "[url, libpq, medusa]",
    port: str = "auto",
) -> Profile:
    text = (
        f"name: doc\npostgres:\n  version: '15'\n  port: {port}\n  ssl: {ssl}\n"
        f"env:\n  file: .env.test\n  preset: {preset}\n"
    )
    return load_profile(write_profile(tmp_path, text))


def failures(checks: list[Check]) -> str:
    """The failing checks as one text, the way a person reads `envctl doctor`."""
    return "\n".join(f"{c.name}: {c.evidence}\n  fix: {c.fix}" for c in checks if not c.ok)


def edit_env_file(path: Path, **changes: str | None) -> None:
    """Set (or, with None, remove) variables in the env file, keeping the rest."""
    lines = []
    for line in path.read_text().splitlines():
        name = line.split("=", 1)[0]
        if name in changes:
            value = changes.pop(name)
            if value is not None:
                lines.append(f"{name}={value}")
            continue
        lines.append(line)
    lines += [f"{name}={value}" for name, value in changes.items() if value is not None]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def running(tmp_path: Path, docker: Any, request: pytest.FixtureRequest) -> Iterator[Environment]:
    """An environment of `make_profile(tmp_path, **request.param)`, removed afterwards."""
    with environment(make_profile(tmp_path, **getattr(request, "param", {}))) as env:
        yield env


def doctor(tmp_path: Path) -> tuple[list[Check], str]:
    profile = load_profile(tmp_path / "profile.yaml")
    checks = run_doctor(profile, None)
    return checks, failures(checks)


@pytest.mark.parametrize(
    ("ssl", "preset"),
    [
        ("disable", "[url, libpq, medusa]"),
        ("verify-full", "[url, libpq, medusa]"),
        ("verify-full", "[prisma]"),
        ("verify-ca", "[django]"),
        ("require", "[rails]"),
        ("verify-full", "[sqlalchemy]"),
        ("verify-full", "[sqlalchemy-asyncpg]"),
        ("disable", "[sqlalchemy-asyncpg]"),
        ("verify-full", "[spring, jdbc]"),
        ("disable", "[dotnet]"),
        ("verify-full", "[dotnet]"),
    ],
)
def test_a_healthy_environment_passes_every_check(
    tmp_path: Path, docker: Any, ssl: str, preset: str
) -> None:
    with environment(make_profile(tmp_path, ssl=ssl, preset=preset)) as env:
        checks, failed = doctor(tmp_path)
        assert failed == ""
        names = [check.name for check in checks]
        assert "matches environment" in names
        connects = [check for check in checks if check.name.startswith("connect")]
        assert connects and all(f":{env.port}" in check.evidence for check in connects)
        wanted = "no SSL" if ssl == "disable" else "SSL"
        assert all(f", {wanted} (" in check.evidence for check in connects)


def test_missing_db_port_names_medusas_default_and_the_real_port(
    tmp_path: Path, running: Environment
) -> None:
    assert running.port != 5432
    edit_env_file(tmp_path / ".env.test", DB_PORT=None)
    _, failed = doctor(tmp_path)
    assert (
        f"DB_PORT is missing: Medusa's runner will use 5432, the database listens on "
        f"{running.port}" in failed
    )
    assert "nothing listens on 127.0.0.1:5432 (DB_PORT is missing, so 5432)" in failed
    assert f"fix: the database listens on {running.port}: set DB_PORT={running.port}" in failed


def test_require_against_a_server_with_ssl_off_says_the_server_has_ssl_off(
    tmp_path: Path, running: Environment
) -> None:
    edit_env_file(tmp_path / ".env.test", PGSSLMODE="require")
    _, failed = doctor(tmp_path)
    assert (
        "the client requires SSL (sslmode require from PGSSLMODE) but the server has SSL off "
        "(the profile has ssl: disable)" in failed
    )
    assert "fix: set PGSSLMODE=disable, or turn SSL on in the profile (`ssl: require`)" in failed
    # Medusa's runner reads the same PGSSLMODE through node-postgres.
    assert "connect: DB_* as Medusa's test runner reads them: the client requires SSL" in failed


def test_a_wrong_password_is_named_without_printing_any_password(
    tmp_path: Path, running: Environment
) -> None:
    edit_env_file(tmp_path / ".env.test", PGPASSWORD="not-the-password")
    checks, failed = doctor(tmp_path)
    assert "the server rejects the password for user postgres (from PGPASSWORD)" in failed
    assert "--show-password` prints it" in failed
    assert "password: DATABASE_URL, PGPASSWORD, DB_PASSWORD differ" in failed
    everything = repr(checks)
    assert running.password not in everything and "not-the-password" not in everything


def test_a_wrong_database_is_named_with_the_right_one(tmp_path: Path, running: Environment) -> None:
    url = running.variables["DATABASE_URL"].replace("/test?", "/nosuchdb?")
    edit_env_file(tmp_path / ".env.test", DATABASE_URL=url)
    _, failed = doctor(tmp_path)
    assert "the server has no database nosuchdb" in failed
    assert "fix: set the database in DATABASE_URL to test" in failed


@pytest.mark.parametrize("running", [{"ssl": "verify-full"}], indirect=True)
def test_verify_full_against_a_name_not_in_the_certificate(
    tmp_path: Path, running: Environment
) -> None:
    # The connection still goes to 127.0.0.1 (PGHOSTADDR), but libpq checks the certificate
    # against PGHOST: no /etc/hosts entry or resolvable name is needed.
    edit_env_file(tmp_path / ".env.test", PGHOST="db.example.invalid", PGHOSTADDR="127.0.0.1")
    _, failed = doctor(tmp_path)
    assert (
        "the server's certificate names localhost, 127.0.0.1, ::1 (and the container's names), "
        "not db.example.invalid, and sslmode verify-full checks the name" in failed
    )
    assert "fix: connect to one of those names (set PGHOST=127.0.0.1)" in failed
    assert "host: DATABASE_URL 127.0.0.1, PGHOST db.example.invalid" in failed


def test_a_port_held_by_another_container_names_the_container(tmp_path: Path, docker: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = f"envctl-doctor-blocker-{uuid.uuid4().hex[:8]}"
    blocker = docker.containers.run(
        TEST_IMAGE_TEMPLATE.format(major=15),
        entrypoint=["sleep", "300"],
        name=name,
        ports={"5432/tcp": ("127.0.0.1", port)},
        detach=True,
    )
    try:
        profile = make_profile(tmp_path, port=str(port))
        checks = run_doctor(profile, None)
    finally:
        blocker.remove(force=True, v=True)  # and the image's anonymous VOLUME
    failed = failures(checks)
    assert f"port: port {port} on 127.0.0.1 is in use by container '{name}'" in failed
    assert f"fix: stop it (`docker stop {name}`), choose another postgres.port" in failed
    assert not all(check.ok for check in checks)


def test_a_missing_image_says_how_to_get_it(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_POSTGRES_IMAGE", "envctl-test/no-such-image:{major}")
    checks = run_doctor(make_profile(tmp_path), None)
    failed = failures(checks)
    assert "image envctl-test/no-such-image:15 is not present locally" in failed
    assert re.search(
        r"`docker pull envctl-test/no-such-image:15`, or point ENVCTL_POSTGRES_IMAGE", failed
    )
