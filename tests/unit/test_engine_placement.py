"""Where a server's port binds and what address clients get, for local and remote engines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from provisioner.runtime import engines
from provisioner.runtime.engines import Candidate, Placement, on_this_machine, placement


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own: ssh:// addresses are read through ~/.ssh/config."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def _ssh_config(home: Path, text: str) -> None:
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").write_text(text)


def test_a_local_engine_keeps_the_profiles_loopback_bind() -> None:
    assert placement("unix:///var/run/docker.sock", "127.0.0.1", {}) == Placement(
        "127.0.0.1", "127.0.0.1"
    )


def test_a_local_wildcard_bind_is_reached_on_loopback() -> None:
    assert placement("unix:///var/run/docker.sock", "0.0.0.0", {}).client_host == "127.0.0.1"


def test_a_remote_engine_on_another_loopback_address_binds_there_without_warning() -> None:
    assert placement("tcp://127.0.0.2:2376", "127.0.0.1", {}) == Placement("127.0.0.2", "127.0.0.2")


def test_a_remote_engine_by_ip_binds_on_that_ip_and_says_what_it_exposes() -> None:
    found = placement("tcp://10.1.2.3:2376", "127.0.0.1", {})
    assert (found.bind_host, found.client_host) == ("10.1.2.3", "10.1.2.3")
    assert found.warning is not None
    assert "published on 10.1.2.3" in found.warning and "password" in found.warning


def test_a_remote_engine_by_name_binds_every_interface_of_it() -> None:
    found = placement("ssh://ci@build-box", "127.0.0.1", {})
    assert (found.bind_host, found.client_host) == ("0.0.0.0", "build-box")
    assert found.warning is not None and "every interface of build-box" in found.warning


def test_the_host_override_names_the_client_address() -> None:
    env = {"ENVCTL_HOST_OVERRIDE": "gateway.local", "TESTCONTAINERS_HOST_OVERRIDE": "other"}
    assert placement("tcp://build-box:2376", "127.0.0.1", env).client_host == "gateway.local"
    testcontainers = {"TESTCONTAINERS_HOST_OVERRIDE": "host.docker.internal"}
    found = placement("unix:///var/run/docker.sock", "127.0.0.1", testcontainers)
    assert found == Placement("127.0.0.1", "host.docker.internal")


def test_an_explicit_non_loopback_bind_is_kept_on_a_remote_engine() -> None:
    assert placement("tcp://build-box:2376", "0.0.0.0", {}) == Placement("0.0.0.0", "build-box")


def test_only_sockets_and_loopback_engines_publish_on_this_machine() -> None:
    assert on_this_machine("unix:///run/podman/podman.sock")
    assert on_this_machine("tcp://127.0.0.2:2376")
    assert not on_this_machine("tcp://build-box:2376")


def test_an_ssh_alias_is_reached_at_the_address_its_ssh_config_names(home: Path) -> None:
    _ssh_config(home, "Host build-box\n  HostName 10.1.2.3\n  Port 2222\n  User ci\n")
    found = placement("ssh://build-box", "127.0.0.1", {})
    assert (found.bind_host, found.client_host) == ("10.1.2.3", "10.1.2.3")
    assert placement("ssh://other-box", "127.0.0.1", {}).client_host == "other-box"


def test_the_sdk_gets_the_ssh_configs_port_which_it_would_not_read(home: Path) -> None:
    assert engines._sdk_address("ssh://build-box") == "ssh://build-box"  # no config: 22
    _ssh_config(home, "Host build-box\n  HostName 10.1.2.3\n  Port 2222\n")
    assert engines._sdk_address("ssh://build-box") == "ssh://build-box:2222"
    assert engines._sdk_address("ssh://ci@build-box") == "ssh://ci@build-box:2222"
    assert engines._sdk_address("ssh://build-box:2200") == "ssh://build-box:2200"
    assert engines._sdk_address("tcp://build-box:2376") == "tcp://build-box:2376"


def test_an_ssh_engine_without_paramiko_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "paramiko", None)  # not importable, as when not installed
    found = engines.probe(Candidate("DOCKER_HOST", "ssh://ci@build-box", explicit=True), 1.0)
    assert not found.answered
    assert found.detail == "the docker SDK reaches ssh:// engines only with paramiko installed"
    assert found.hint == "pip install 'envctl[ssh]'"
    assert engines.unavailable([found]).hint == "pip install 'envctl[ssh]'"
