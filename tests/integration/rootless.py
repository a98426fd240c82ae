"""Rootless engines, for real: an unprivileged user's own engine, and envctl run as that user,
as a user on a laptop or a CI runner without root has them. Either rootless Podman (`podman
system service` on $XDG_RUNTIME_DIR/podman/podman.sock) or rootless Docker (Docker's own
`dockerd-rootless.sh`, through rootlesskit, on $XDG_RUNTIME_DIR/docker.sock).

The user is `envctl-rootless` (made once, with its subordinate ids, as `useradd` makes them);
every session gets a fresh HOME (its containers' storage) and XDG_RUNTIME_DIR, removed
afterwards with everything in them. envctl runs as that user from this checkout with the
system's Python of the same minor version (the virtualenv's interpreter lives under root's
home, which the user may not enter), its packages from the virtualenv's site-packages.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.integration.podman_engine import CannotStart, containers_conf, log_tail, remove_folder

USER = "envctl-rootless"
# Debian's docker.io keeps it among its contrib scripts; Docker's own packages put it on PATH.
DOCKERD_ROOTLESS = ("dockerd-rootless.sh", "/usr/share/docker.io/contrib/dockerd-rootless.sh")
SYSTEM_PYTHON = "/usr/bin/python3"
START_TIMEOUT = 30.0
REPO = Path(__file__).parents[2]


@dataclass(frozen=True)
class RootlessEngine:
    kind: str  # "podman" or "docker"
    uid: int
    gid: int
    home: Path
    runtime_dir: Path

    @property
    def socket(self) -> Path:
        if self.kind == "podman":
            return self.runtime_dir / "podman" / "podman.sock"
        return self.runtime_dir / "docker.sock"

    @property
    def discovered_as(self) -> str:
        """How `envctl runtimes` names it."""
        return "Podman (rootless)" if self.kind == "podman" else "rootless Docker"

    @property
    def product(self) -> str:
        return "Podman Engine" if self.kind == "podman" else "Docker Engine"

    @property
    def env(self) -> dict[str, str]:
        """The user's environment: no DOCKER_HOST, no ENVCTL_* variable."""
        return {
            "HOME": str(self.home),
            "USER": USER,
            "LOGNAME": USER,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            # dockerd-rootless.sh needs rootlesskit, dockerd and slirp4netns on it.
            "PATH": f"{Path(DOCKERD_ROOTLESS[1]).parent}:/usr/local/bin:/usr/bin:/bin:/usr/sbin",
            "LANG": "C.UTF-8",
            "CONTAINERS_CONF": str(self.home / "containers.conf"),
            "PYTHONPATH": f"{REPO}{os.pathsep}{sysconfig.get_paths()['purelib']}",
        }

    def run(
        self, argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 240, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` as the user, in its environment (plus `env`)."""
        return subprocess.run(
            list(argv),
            cwd=cwd or self.home,
            env={**self.env, **env},
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def envctl(
        self, *args: str, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run([SYSTEM_PYTHON, "-m", "provisioner", *args], cwd=cwd, **env)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The engine's own command line, as the user, on the user's engine."""
        if self.kind == "podman":
            return self.run(["podman", *args], timeout=120)
        return self.run(["docker", "-H", f"unix://{self.socket}", *args], timeout=120)

    def service(self) -> list[str]:
        if self.kind == "podman":
            return ["podman", "system", "service", "--time=0", f"unix://{self.socket}"]
        return [next(path for path in DOCKERD_ROOTLESS if shutil.which(path))]

    def folder(self, name: str) -> Path:
        """A folder of the user's own, for its profiles and projects."""
        path = self.home / name
        path.mkdir()
        os.chown(path, self.uid, self.gid)
        return path

    def give(self, path: Path) -> None:
        """Hand what the test (root) wrote under the user's folders to the user."""
        for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
            os.chown(item, self.uid, self.gid)


def _user() -> pwd.struct_passwd:
    """The unprivileged user, made once with subordinate ids for its user namespace."""
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        raise CannotStart(f"useradd {USER}: {made.stderr.strip()}")
    return pwd.getpwnam(USER)


def _subordinate_ids(entry: pwd.struct_passwd) -> None:
    """/etc/subuid and /etc/subgid ranges (a system user gets none from useradd)."""
    for table, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
        try:
            lines = Path(table).read_text().splitlines()
        except FileNotFoundError:
            lines = []
        if any(line.split(":")[0] in (USER, str(entry.pw_uid)) for line in lines):
            continue
        added = subprocess.run(
            ["usermod", flag, "300000-365535", USER], capture_output=True, text=True, check=False
        )
        if added.returncode != 0:
            raise CannotStart(f"usermod {flag}: {added.stderr.strip()}")


def _check_machine(kind: str) -> None:
    if os.getuid() != 0:
        raise CannotStart("making the rootless user and its folders needs root")
    engine = ("podman",) if kind == "podman" else ("rootlesskit",)
    for tool in (*engine, "newuidmap", "newgidmap", "slirp4netns", "docker", "useradd"):
        if shutil.which(tool) is None:
            raise CannotStart(f"{tool} is not installed")
    if kind == "docker" and not any(shutil.which(path) for path in DOCKERD_ROOTLESS):
        raise CannotStart("dockerd-rootless.sh is not installed (Docker's rootless extras)")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0 or probe.stdout.strip() != str(sys.version_info[:2]):
        raise CannotStart(
            f"{SYSTEM_PYTHON} is not Python {sys.version_info.major}.{sys.version_info.minor}, "
            "the virtualenv's (its packages are built for it)"
        )
    tun = Path("/dev/net/tun")
    if not tun.exists() or tun.stat().st_mode & 0o006 != 0o006:
        raise CannotStart(
            "/dev/net/tun is not usable by other users (slirp4netns needs it for rootless "
            "networking): chmod 0666 /dev/net/tun, as udev makes it on a distribution"
        )


@contextlib.contextmanager
def rootless_engine(kind: str, images: Mapping[str, str]) -> Iterator[RootlessEngine]:
    """The user's engine of `kind`, with each `images` key (an image of the machine's Docker
    engine) loaded under the value's name; everything of it removed afterwards."""
    _check_machine(kind)
    entry = _user()
    _subordinate_ids(entry)
    # Unix socket paths are short (108 bytes): not under pytest's deep tmp folder.
    home = Path(tempfile.mkdtemp(prefix="envctl-rl-home-", dir="/tmp"))
    runtime_dir = Path(tempfile.mkdtemp(prefix="envctl-rl-", dir="/tmp"))
    engine = RootlessEngine(kind, entry.pw_uid, entry.pw_gid, home, runtime_dir)
    (home / "containers.conf").write_text(containers_conf())
    for folder in (home, runtime_dir):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o700)
    engine.give(home)
    log = home / "service.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        engine.socket.parent.mkdir(exist_ok=True)
        os.chown(engine.socket.parent, entry.pw_uid, entry.pw_gid)
        with log.open("wb") as output:
            process = subprocess.Popen(
                engine.service(),
                cwd=home,
                env=engine.env,
                user=entry.pw_uid,
                group=entry.pw_gid,
                extra_groups=[],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait_until_answering(engine, process, log)
        for source, name in images.items():
            _load(engine, source, name)
        yield engine
    finally:
        if process is not None and process.poll() is None:
            if kind == "podman":  # its containers' processes outlive the service
                engine.cli("rm", "--all", "--force", "--time=0")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
        # conmon, rootlessport, slirp4netns and the pause process of the user's namespace.
        subprocess.run(["pkill", "-KILL", "-u", USER], capture_output=True, check=False)
        for folder in (home, runtime_dir):
            remove_folder(folder)


def _wait_until_answering(
    engine: RootlessEngine, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CannotStart(f"{engine.kind} exited with {process.returncode}: {log_tail(log)}")
        if (
            engine.socket.exists()
            and engine.cli("version", "--format", "{{.Server.Version}}").returncode == 0
        ):
            return
        time.sleep(0.2)
    raise CannotStart(f"{engine.kind} did not answer within {START_TIMEOUT:.0f}s: {log_tail(log)}")


def _load(engine: RootlessEngine, source: str, name: str) -> None:
    """`docker save SOURCE` into the user's storage, tagged NAME as the Docker API resolves it."""
    archive = engine.home / "image.tar"
    saved = subprocess.run(
        ["docker", "save", "-o", str(archive), source], capture_output=True, check=False
    )
    if saved.returncode != 0:
        raise CannotStart(f"docker save {source}: {saved.stderr.decode(errors='replace')}")
    engine.give(archive)
    try:
        loaded = engine.cli("load", "--quiet", "--input", str(archive))
        if loaded.returncode != 0:
            raise CannotStart(f"could not load {source}: {loaded.stderr}")
    finally:
        archive.unlink()
    # Podman's Docker API takes a short name as Docker Hub's (docker.io/library/...).
    for tag in (name, f"docker.io/library/{name}") if engine.kind == "podman" else (name,):
        tagged = engine.cli("tag", source, tag)
        if tagged.returncode != 0:
            raise CannotStart(f"could not tag {tag}: {tagged.stderr}")
