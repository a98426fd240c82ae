"""Rootless engines, for real (#24): an unprivileged user runs envctl against their own
rootless Podman or rootless Docker, found by discovery under $XDG_RUNTIME_DIR with no
DOCKER_HOST and no ENVCTL_* variable (tests/integration/rootless.py). Where one cannot run,
its tests skip on a laptop and fail when CI is set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import conftest
from tests.integration.podman_engine import CannotStart
from tests.integration.rootless import RootlessEngine, rootless_engine

pytestmark = pytest.mark.podman

MAJOR = 17
PROFILE = f"""name: rootless
postgres:
  version: "{MAJOR}"
  ssl: verify-full
  seed: [seed.sql]
"""
CHECK = (
    "import os, dotenv, psycopg\n"
    "os.environ.update(dotenv.dotenv_values('.env.test'))\n"
    "with psycopg.connect(os.environ['DATABASE_URL']) as c:\n"
    "    print(c.execute('SELECT name FROM pets').fetchone()[0], c.info.pgconn.ssl_in_use)\n"
)


@pytest.fixture(scope="module", params=["podman", "docker"])
def rootless(docker_client: Any, request: pytest.FixtureRequest) -> Iterator[RootlessEngine]:
    source = conftest.test_image(docker_client, MAJOR)
    try:
        with rootless_engine(request.param, {source: f"postgres:{MAJOR}"}) as engine:
            yield engine
    except CannotStart as exc:
        conftest.unavailable(f"rootless {request.param} cannot run here: {exc}")


@pytest.fixture
def project(rootless: RootlessEngine, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A project folder of the user's, with the profile and its seed; afterwards, fails the
    test if the user's engine holds any container or network of envctl's."""
    folder = rootless.folder(request.node.name[:40].replace("[", "-").replace("]", ""))
    (folder / "envctl.yaml").write_text(PROFILE)
    (folder / "seed.sql").write_text(
        "CREATE TABLE pets (name text); INSERT INTO pets VALUES ('rex');\n"
    )
    (folder / "check.py").write_text(CHECK)
    rootless.give(folder)
    yield folder
    left = rootless.cli("ps", "--all", "--quiet", "--filter", "label=dev.envctl.managed")
    networks = rootless.cli("network", "ls", "--quiet", "--filter", "label=dev.envctl.managed")
    assert (left.stdout.strip(), networks.stdout.strip()) == ("", ""), "envctl left resources"


def test_discovery_finds_the_users_rootless_engine(rootless: RootlessEngine, project: Path) -> None:
    found = rootless.envctl("runtimes", cwd=project)
    assert found.returncode == 0, found.stderr
    named = f"unix://{rootless.socket} [{rootless.discovered_as}] answers: {rootless.product}"
    assert named in found.stdout


def test_up_seed_verify_full_and_down_twice_as_the_user(
    rootless: RootlessEngine, project: Path
) -> None:
    # ENVCTL_CACHE=on: the first start keeps its cluster where the engine can pause one
    # (rootless Podman on cgroup v1 cannot: the start says so and goes on), and the second
    # starts from it.
    kept = False
    for start in range(2):
        up = rootless.envctl("up", "envctl.yaml", cwd=project, ENVCTL_CACHE="on")
        try:
            assert up.returncode == 0, up.stderr
            assert "runtime: docker" in up.stderr
            assert "Traceback" not in up.stderr
            if start == 0:
                kept = "kept the initialized cluster in the cache" in up.stderr
                assert kept or "can not pause" in up.stderr, up.stderr
            else:
                assert ("from the cache" in up.stderr) == kept, up.stderr
            seen = rootless.run(["/usr/bin/python3", "check.py"], cwd=project)
            assert seen.returncode == 0, seen.stderr
            assert seen.stdout.split() == ["rex", "True"]
        finally:
            down = rootless.envctl("down", "envctl.yaml", cwd=project)
        assert down.returncode == 0, down.stderr
        assert not (project / ".env.test").exists()


def test_the_suite_runs_in_a_container_on_the_users_engine(
    rootless: RootlessEngine, project: Path
) -> None:
    (project / "envctl.yaml").write_text(
        PROFILE
        + f"test:\n  container:\n    image: postgres:{MAJOR}\n"
        + '  command: [sh, -c, \'psql "$DATABASE_URL" -tAc "SELECT name FROM pets"\']\n'
    )
    rootless.give(project / "envctl.yaml")
    result = rootless.envctl("run", "envctl.yaml", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "rex" in result.stdout.split()
    assert "Traceback" not in result.stderr
