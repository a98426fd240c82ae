"""Shared fixtures: a private state folder per test, the local test images, leak checks.

Tests marked `docker` need a Docker engine and the images built by tests/images/build.py.
Without them they are skipped on a laptop, but fail when CI=true: CI must never pass by
skipping the tests that matter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TEST_IMAGE_TEMPLATE = "envctl-test/postgres:{major}"
MAJORS = (15, 17)
ROOT = Path(__file__).resolve().parents[1]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: Docker tests must not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Any:
    from provisioner.errors import DockerUnavailableError
    from provisioner.runtime.docker import docker_client as connect

    try:
        return connect()
    except DockerUnavailableError as exc:
        _unavailable(f"Docker is not available: {exc.message}")


@pytest.fixture(scope="session")
def test_images(docker_client: Any) -> dict[int, str]:
    from docker.errors import ImageNotFound

    images = {}
    for major in MAJORS:
        name = TEST_IMAGE_TEMPLATE.format(major=major)
        try:
            docker_client.images.get(name)
        except ImageNotFound:
            _unavailable(f"test image {name} is missing: run python tests/images/build.py")
        images[major] = name
    return images


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "envctl-state"
    monkeypatch.setenv("ENVCTL_STATE_DIR", str(state))
    monkeypatch.setenv("ENVCTL_POSTGRES_IMAGE", TEST_IMAGE_TEMPLATE)
    # Docker unless a test asks for another runtime: `auto` would hide a Docker failure.
    monkeypatch.setenv("ENVCTL_RUNTIME", "docker")
    return state


@pytest.fixture
def docker(
    request: pytest.FixtureRequest,
    docker_client: Any,
    test_images: dict[int, str],
    private_state: Path,
) -> Iterator[Any]:
    """The Docker client; after the test, asserts that nothing of this test's is left."""
    yield docker_client
    leaks = leftovers(docker_client, private_state)
    if leaks:
        for kind, obj in leaks:
            if kind == "container":
                obj.remove(force=True, v=True)
            else:
                obj.remove()
        pytest.fail(f"the test left Docker resources behind: {[o.name for _, o in leaks]}")


def leftovers(client: Any, state_root: Path) -> list[tuple[str, Any]]:
    """Containers and networks labelled by envctl whose state folder is under `state_root`."""

    def mine(labels: dict[str, str]) -> bool:
        return labels.get("dev.envctl.state-dir", "").startswith(str(state_root))

    found: list[tuple[str, Any]] = []
    selector = {"label": "dev.envctl.managed"}
    for container in client.containers.list(all=True, filters=selector):
        if mine(container.labels):
            found.append(("container", container))
    for network in client.networks.list(filters=selector):
        if mine(network.attrs.get("Labels") or {}):
            found.append(("network", network))
    return found


def envctl(
    *args: str, cwd: Path | None = None, check: bool = False, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run the real `envctl` CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "provisioner", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
        timeout=180,
        **kwargs,
    )


def write_profile(folder: Path, text: str, name: str = "profile.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path
