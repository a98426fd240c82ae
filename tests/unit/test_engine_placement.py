"""Where a server's port binds and what address clients get, for local and remote engines."""

from __future__ import annotations

from provisioner.runtime.engines import Placement, on_this_machine, placement


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
