"""Podman, for real (#24): the installed `envctl` against `podman system service`'s
Docker-compatible API, chosen by DOCKER_HOST as a Podman user sets it, with no ENVCTL_*
variable. The engine is tests/integration/podman_engine.py's private one; `-m podman` runs
these alone. Where Podman cannot start they skip on a laptop and fail when CI is set."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import conftest
from tests.integration.podman_engine import CannotStart, Podman, podman_engine

pytestmark = pytest.mark.podman

MAJOR = 17
ENVCTL = Path(sys.executable).parent / "envctl"
SEED = "CREATE TABLE pets (name text);\nINSERT INTO pets VALUES ('rex');\n"
PROFILE = f"""name: pod
postgres:
  version: "{MAJOR}"
  ssl: verify-full
  seed: [seed.sql]
"""


@pytest.fixture(scope="session")
def podman(docker_client: Any) -> Iterator[Podman]:
    """One private Podman per session, holding the test image as `postgres:MAJOR`."""
    source = conftest.test_image(docker_client, MAJOR)
    try:
        with podman_engine({source: f"postgres:{MAJOR}"}) as engine:
            yield engine
    except CannotStart as exc:
        conftest.unavailable(f"Podman cannot start here: {exc}")


@pytest.fixture
def user(tmp_path: Path, podman: Podman) -> Iterator[dict[str, str]]:
    """A Podman user's environment: DOCKER_HOST names the socket, no ENVCTL_* variable, a
    HOME of its own. Afterwards, fails the test if anything is left in Podman."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ENVCTL_", "PYTEST_", "COV_CORE_", "DOCKER_"))
    }
    home = tmp_path / "home"
    for sub in (".config", ".cache", ".local/state", ".local/share"):
        (home / sub).mkdir(parents=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_DATA_HOME=str(home / ".local/share"),
        DOCKER_HOST=podman.socket,
        PATH=os.pathsep.join([str(ENVCTL.parent), env.get("PATH", os.defpath)]),
    )
    (tmp_path / "seed.sql").write_text(SEED)
    (tmp_path / "profile.yaml").write_text(PROFILE)
    yield env
    leaks = leftovers(podman)
    assert not leaks, f"envctl left these in Podman: {leaks}"


def leftovers(podman: Podman) -> list[str]:
    """Every container, volume and network in Podman but its default network (which its
    Docker API calls `bridge`, as Docker's)."""
    from docker import DockerClient

    client = DockerClient(base_url=podman.socket, timeout=30)
    try:
        found = [f"container {c.name}" for c in client.containers.list(all=True)]
        found += [f"volume {v.name}" for v in client.volumes.list()]
        networks = client.networks.list()
        found += [f"network {n.name}" for n in networks if n.name not in ("bridge", "podman")]
    finally:
        client.close()
    return found


def envctl(podman: Podman, env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    result = podman.run([str(ENVCTL), *args], env, cwd=cwd, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def fetch(podman: Podman, env: dict[str, str], url: str, sql: str) -> list[Any]:
    """The rows of `sql` at `url`, from a client in Podman's network namespace."""
    code = (
        "import json, sys, psycopg\n"
        "with psycopg.connect(sys.argv[1], connect_timeout=10) as conn:\n"
        "    print(json.dumps(conn.execute(sys.argv[2]).fetchall()))\n"
    )
    result = podman.run([sys.executable, "-c", code, url, sql], env, timeout=60)
    assert result.returncode == 0, result.stderr
    rows: list[Any] = json.loads(result.stdout)
    return rows


def env_file(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {key: value or "" for key, value in dotenv_values(path).items()}


def test_up_seed_verify_full_and_down_on_podman(
    tmp_path: Path, podman: Podman, user: dict[str, str]
) -> None:
    code, _, err = envctl(podman, user, tmp_path, "up", "profile.yaml")
    assert code == 0, err
    assert "Podman" in err or "docker" in err
    url = env_file(tmp_path / ".env.test")["DATABASE_URL"]
    assert "sslmode=verify-full" in url
    assert fetch(podman, user, url, "SELECT name FROM pets") == [["rex"]]
    ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    assert fetch(podman, user, url, ssl) == [[True]]
    code, _, err = envctl(podman, user, tmp_path, "down", "profile.yaml")
    assert code == 0, err
    assert not (tmp_path / ".env.test").exists()


def test_runs_in_a_row_keep_the_cluster_and_start_from_the_cache_on_podman(
    tmp_path: Path, podman: Podman, user: dict[str, str]
) -> None:
    # The default cache mode (auto): the second start of a profile keeps its cluster (a
    # commit, whose configuration Podman takes only as `changes`), the third starts from it.
    check = ["sh", "-c", 'test "$(psql "$DATABASE_URL" -tAc "SELECT name FROM pets")" = rex']
    outputs = []
    for _ in range(3):
        code, out, err = envctl(podman, user, tmp_path, "run", "profile.yaml", "--", *check)
        assert code == 0, err
        outputs.append(out + err)
    assert "restoring seed.sql" in outputs[0]
    assert "kept the initialized cluster in the cache" in outputs[1], outputs[1]
    assert "from the cache" in outputs[2], outputs[2]
    assert "restoring seed.sql" not in outputs[2], outputs[2]


def test_the_suite_runs_in_a_container_on_podman(
    tmp_path: Path, podman: Podman, user: dict[str, str]
) -> None:
    # On the environment's network, by the alias, over verify-full with the mounted CA.
    check = (
        'test "$PGHOST" = postgres && test "$PGPORT" = 5432 && '
        'psql -tAc "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" > result.txt && '
        'psql -tAc "SELECT name FROM pets" >> result.txt'
    )
    (tmp_path / "profile.yaml").write_text(
        PROFILE + f"test:\n  container:\n    image: postgres:{MAJOR}\n"
        f"  command: [sh, -c, {json.dumps(check)}]\n"
    )
    code, _, err = envctl(podman, user, tmp_path, "run", "profile.yaml")
    assert code == 0, err
    assert (tmp_path / "result.txt").read_text().split() == ["t", "rex"]


def test_runtimes_names_the_podman_engine(
    tmp_path: Path, podman: Podman, user: dict[str, str]
) -> None:
    code, out, err = envctl(podman, user, tmp_path, "runtimes", "--json")
    assert code == 0, err
    docker = json.loads(out)["docker"]
    assert docker["available"] is True
    (chosen,) = [engine for engine in docker["engines"] if engine["chosen"]]
    assert chosen["address"] == podman.socket
    assert chosen["detail"].startswith("Podman Engine ")


def test_gc_after_kill_9_of_a_run_removes_everything_on_podman(
    tmp_path: Path, podman: Podman, user: dict[str, str]
) -> None:
    import signal
    import subprocess
    import time

    log = tmp_path / "run.log"
    with log.open("w") as out:
        # nsenter execs envctl in place: the pid is envctl's.
        killed = subprocess.Popen(
            [*podman.inside(), str(ENVCTL), "run", "profile.yaml", "--", "sleep", "60"],
            cwd=tmp_path,
            env=user,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 120
        while "running: sleep 60" not in log.read_text():
            assert killed.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        os.kill(killed.pid, signal.SIGKILL)
        assert killed.wait(timeout=30) == -signal.SIGKILL
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    assert leftovers(podman)  # kill -9 gave envctl no chance to clean up
    code, _, err = envctl(podman, user, tmp_path, "gc")
    assert code == 0, err
    assert "removed container envctl-" in err, err
    code, _, err = envctl(podman, user, tmp_path, "status")
    assert err.startswith("no environments"), err
    # The `user` fixture then checks that Podman holds nothing of it.
