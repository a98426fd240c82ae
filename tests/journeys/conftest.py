"""Journeys: the installed `envctl` command, run as a user runs it.

Each journey runs the console script of this environment (the venv's bin/envctl) as a
subprocess, with no ENVCTL_* variable at all (tests/conftest.py's autouse pins are dropped
from the subprocess's environment), its own HOME and XDG folders, and so the defaults a user
gets: `runtime: auto`, the cache in its default mode, the official image names `postgres:N`
(tests/images/build.py tags its look-alikes so). After each journey nothing of it may be
left: no container, network or volume labelled by envctl with a state folder under the
journey's HOME, no native server under its TMPDIR.

Without Docker or the images, journeys skip on a laptop and fail when CI is truthy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ENVCTL = Path(sys.executable).parent / "envctl"
OFFICIAL_IMAGE = "postgres:{major}"
JOURNEY_MAJORS = (15, 17, 18)  # 18: the quickstart's
MANAGED = "dev.envctl.managed"
STATE_LABEL = "dev.envctl.state-dir"
TIMEOUT = 240


def ci_is_on() -> bool:
    """CI set to anything but an empty or false-looking value (CI=1, CI=true, CI=yes...)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def unavailable(reason: str) -> None:
    """Skip on a laptop; fail under CI, which must never pass by skipping journeys."""
    if ci_is_on():
        pytest.fail(f"{reason} (CI is set: journeys must not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def journey_docker() -> Any:
    """The Docker client, once the official-named images of JOURNEY_MAJORS are here."""
    from provisioner.errors import DockerUnavailableError
    from provisioner.runtime.engines import docker_client

    try:
        client = docker_client()
    except DockerUnavailableError as exc:
        unavailable(f"Docker is not available: {exc.message}")
    from docker.errors import ImageNotFound

    for major in JOURNEY_MAJORS:
        try:
            client.images.get(OFFICIAL_IMAGE.format(major=major))
        except ImageNotFound:
            unavailable(
                f"image {OFFICIAL_IMAGE.format(major=major)} is missing: run "
                "python tests/images/build.py 15 17 18 (it tags postgres:N too)"
            )
    if not ENVCTL.exists():
        pytest.fail(f"{ENVCTL} is not installed: pip install -e '.[dev]'", pytrace=False)
    return client


@dataclass
class Journey:
    """One user's machine: a HOME, XDG folders, a TMPDIR and the environment envctl sees."""

    home: Path
    tmpdir: Path
    env: dict[str, str]
    workdir: Path

    def envctl(
        self, *args: str | Path, cwd: Path | None = None, timeout: float = TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """`envctl ARGS` as typed in a shell in `cwd` (default: the journey's work folder)."""
        return subprocess.run(
            [str(ENVCTL), *map(str, args)],
            cwd=cwd or self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def user_environment(home: Path, tmpdir: Path) -> dict[str, str]:
    """This process's environment without any ENVCTL_* variable, with a HOME of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env = {k: v for k, v in env.items() if not k.startswith(("PYTEST_", "COV_CORE_"))}
    folders = {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_STATE_HOME": home / ".local" / "state",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_DATA_HOME": home / ".local" / "share",
    }
    for name, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(folder)
    env["TMPDIR"] = str(tmpdir)
    # As in a shell with the venv activated: `envctl`, `pytest` and `python` are this install's.
    env["PATH"] = os.pathsep.join([str(ENVCTL.parent), env.get("PATH", os.defpath)])
    return env


def env_file_values(path: Path) -> dict[str, str]:
    """The variables of an env file as python-dotenv (what apps load) reads them."""
    from dotenv import dotenv_values

    return {key: value or "" for key, value in dotenv_values(path).items()}


def fetch_one(url: str, sql: str) -> tuple[Any, ...]:
    """One row of `sql` over a real connection to `url` (a DATABASE_URL)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    """envctl's errors are one line and a hint, never a Python traceback."""
    assert "Traceback" not in result.stderr, result.stderr


@pytest.fixture
def journey(tmp_path: Path, journey_docker: Any) -> Iterator[Journey]:
    """A clean user's machine; afterwards, fails the journey if anything of it is left."""
    home = tmp_path / "home"
    # Short: native servers put their socket under TMPDIR.
    tmpdir = Path(tempfile.mkdtemp(prefix="envj-", dir="/tmp"))
    workdir = tmp_path / "work"
    workdir.mkdir()
    try:
        yield Journey(home=home, tmpdir=tmpdir, env=user_environment(home, tmpdir), workdir=workdir)
    finally:
        leaks = docker_leftovers(journey_docker, home) + native_leftovers(tmpdir)
        remove_cache_images(journey_docker, tmp_path)
        shutil.rmtree(tmpdir, ignore_errors=True)
    if leaks:
        pytest.fail(f"the journey left things behind: {leaks}", pytrace=False)


def docker_leftovers(client: Any, home: Path) -> list[str]:
    """Containers, networks and volumes labelled by envctl with a state folder under `home`;
    removed after being named."""

    def mine(labels: dict[str, str] | None) -> bool:
        return (labels or {}).get(STATE_LABEL, "").startswith(str(home))

    found = []
    selector = {"label": MANAGED}
    for summary in client.api.containers(all=True, filters=selector):
        if mine(summary.get("Labels")):
            name = (summary.get("Names") or [summary["Id"][:12]])[0].lstrip("/")
            found.append(f"container {name}")
            client.api.remove_container(summary["Id"], force=True, v=True)
    for network in client.networks.list(filters=selector):
        if mine(network.attrs.get("Labels")):
            found.append(f"network {network.name}")
            network.remove()
    for volume in client.volumes.list(filters=selector):
        if mine(volume.attrs.get("Labels")):
            found.append(f"volume {volume.name}")
            volume.remove(force=True)
    return found


def native_leftovers(tmpdir: Path) -> list[str]:
    """Native servers whose data lives under the journey's TMPDIR; killed after being named."""
    found = subprocess.run(
        ["pgrep", "-f", "--", str(tmpdir)], capture_output=True, text=True, check=False
    )
    pids = [int(pid) for pid in found.stdout.split()]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return [f"native postgres {pid}" for pid in pids]


def remove_cache_images(client: Any, folder: Path) -> None:
    """The journey's own cache entries (a cache is meant to stay; not past its test)."""
    for image in client.images.list(filters={"label": "dev.envctl.cache"}):
        if str(folder) in (image.labels or {}).get("dev.envctl.cache-profile", ""):
            client.images.remove(image.id, force=True)
