"""A remote engine (DOCKER_HOST=tcp://127.0.0.2 with TLS client certificates), for real: the
env file's variables alone must reach the server at the engine's address."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import envctl, leftovers, unavailable, write_profile
from tests.integration.second_engine import ADDRESS, CannotStart, SecondEngine, second_engine

MAJOR = 17


@pytest.fixture(scope="session")
def remote_engine(docker_client: Any, test_images: dict[int, str]) -> Iterator[SecondEngine]:
    """One second dockerd per session, with the test image of MAJOR loaded into it."""
    try:
        with second_engine([test_images[MAJOR]]) as engine:
            yield engine
    except CannotStart as exc:
        unavailable(f"the second dockerd cannot start here: {exc}")


@pytest.fixture
def remote_client(remote_engine: SecondEngine, private_state: Path) -> Iterator[Any]:
    """A client of the second engine; afterwards, fails the test if anything of it is left."""
    from provisioner.runtime.engines import candidates, sdk_client

    (candidate,) = candidates(remote_engine.client_env)
    client = sdk_client(candidate)
    yield client
    leaks = leftovers(client, private_state)
    for _, obj in leaks:
        obj.remove()
    assert not leaks, f"the test left resources on the second engine: {leaks}"


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs if not key.startswith("#")}


@pytest.mark.parametrize("ssl", ["disable", "verify-full"])
def test_an_environment_on_a_remote_engine_is_reached_at_the_engines_address(
    tmp_path: Path,
    remote_engine: SecondEngine,
    remote_client: Any,
    docker_client: Any,
    private_state: Path,
    ssl: str,
) -> None:
    import psycopg

    (tmp_path / "seed.sql").write_text(
        "CREATE TABLE pets (name text); INSERT INTO pets VALUES ('rex');\n"
    )
    profile = write_profile(
        tmp_path,
        f"name: remote\npostgres:\n  version: '{MAJOR}'\n  ssl: {ssl}\n"
        "  seed: [seed.sql]\nenv:\n  file: .env.test\n",
    )
    env = {
        **os.environ,
        **remote_engine.client_env,
        "ENVCTL_POSTGRES_IMAGE": "envctl-test/postgres:{major}",
        "ENVCTL_CACHE": "off",
        "ENVCTL_RUNTIME": "docker",
    }
    up = envctl("up", str(profile), env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert "warning" not in up.stderr  # 127.0.0.2 is loopback: nothing is exposed
        url = read_env_file(tmp_path / ".env.test")["DATABASE_URL"]
        assert urllib.parse.urlsplit(url).hostname == ADDRESS
        with psycopg.connect(url, connect_timeout=10) as connection:
            assert connection.execute("SELECT name FROM pets").fetchall() == [("rex",)]
            if ssl != "disable":
                assert connection.info.pgconn.ssl_in_use
        (container,) = remote_client.containers.list(filters={"label": "dev.envctl.managed"})
        binding = container.attrs["NetworkSettings"]["Ports"]["5432/tcp"][0]
        assert binding["HostIp"] == ADDRESS
        assert not leftovers(docker_client, private_state), "it ran on the machine's engine"
    finally:
        down = envctl("down", str(profile), env=env)
    assert down.returncode == 0, down.stderr
    assert not remote_client.containers.list(all=True, filters={"label": "dev.envctl.managed"})


def test_the_host_override_names_the_address_clients_get_and_the_port_binds_there(
    tmp_path: Path, remote_engine: SecondEngine, remote_client: Any
) -> None:
    profile = write_profile(tmp_path, f"name: override\npostgres: {{version: '{MAJOR}'}}\n")
    env = {
        **os.environ,
        **remote_engine.client_env,
        "ENVCTL_POSTGRES_IMAGE": "envctl-test/postgres:{major}",
        "ENVCTL_CACHE": "off",
        "TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.3",
    }
    up = envctl("up", str(profile), "--json", env=env)
    try:
        assert up.returncode == 0, up.stderr
        import json

        assert json.loads(up.stdout)["host"] == "127.0.0.3"
        (container,) = remote_client.containers.list(filters={"label": "dev.envctl.managed"})
        binding = container.attrs["NetworkSettings"]["Ports"]["5432/tcp"][0]
        assert binding["HostIp"] == "127.0.0.3"  # where clients are sent, not the engine's
    finally:
        assert envctl("down", str(profile), env=env).returncode == 0
