"""envctl's own Engine API calls: over the local socket, through the SDK's session, and the
promise they exist for (an `up` and a `down` that never import the `docker` SDK)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.environments import down, up
from provisioner.errors import DockerUnavailableError
from provisioner.profile import load_profile
from provisioner.runtime.docker import DockerRuntime
from provisioner.runtime.engine import Engine, EngineError, SdkSession, UnixSocket
from provisioner.runtime.engines import docker_engine
from tests.conftest import ROOT, leftovers, remove_cache_entries, write_profile

PROFILE = "name: {name}\npostgres:\n  version: '15'\nenv:\n  file: null\n"


def imported_modules(*args: str, env: dict[str, str]) -> set[str]:
    """The modules `envctl ARGS` imports (python -X importtime), after checking it succeeded."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "provisioner", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines}


@pytest.mark.parametrize("cache", ["off", "on"])
def test_up_and_down_never_import_the_docker_sdk(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch, cache: str
) -> None:
    """A tenth of a second of every start: `up` (cold, warm) and `down` speak HTTP themselves."""
    profile = write_profile(tmp_path, PROFILE.format(name=f"sdkfree-{cache}"))
    env = {**os.environ, "ENVCTL_CACHE": cache}
    runs = 2 if cache == "on" else 1  # with the cache: the start that keeps it, then a hit
    try:
        for _ in range(runs):
            started = imported_modules("up", str(profile), env=env)
            stopped = imported_modules("down", str(profile), env=env)
            assert "provisioner.runtime.engine" in started  # the check would see an import
            for modules in (started, stopped):
                assert not modules & {"docker", "requests", "urllib3"}
    finally:
        subprocess.run([sys.executable, "-m", "provisioner", "down", str(profile)], env=env)
        remove_cache_entries(docker, tmp_path)


def test_an_environment_runs_the_same_through_the_sdks_session(tmp_path: Path, docker: Any) -> None:
    """The transport for tcp://, TLS and ssh:// engines, tried on the local one."""
    runtime = DockerRuntime(Engine(SdkSession(docker)))
    profile = load_profile(write_profile(tmp_path, PROFILE.format(name="via-sdk")))
    env = up(profile, runtime=runtime)
    try:
        with psycopg.connect(env.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("test",)
        assert runtime.failure(env.env_id) is None
        assert [found.env_id for found in runtime.environments()].count(env.env_id) == 1
    finally:
        removed = down(env.env_id, runtime=runtime)
    assert removed and removed[0].startswith("container envctl-via-sdk")
    assert runtime.failure(env.env_id) == "the container is gone"
    assert leftovers(docker, tmp_path) == []


def test_engine_errors_carry_the_engines_status_and_message(docker: Any) -> None:
    engine = docker_engine()
    assert isinstance(engine.transport, UnixSocket)
    assert engine.container("envctl-no-such-container") is None
    assert engine.image("envctl-test/no-such-image:1") is None
    with pytest.raises(EngineError) as raised:
        engine.request("POST", "/containers/envctl-no-such-container/start")
    assert raised.value.status == 404
    assert "envctl-no-such-container" in raised.value.message


def test_no_engine_at_the_socket_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(DockerUnavailableError) as raised:
        docker_engine(timeout=1)
    assert raised.value.message == (
        f"no Docker engine answers at unix://{tmp_path}/nothing.sock (DOCKER_HOST: no socket there)"
    )
