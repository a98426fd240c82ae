"""A real Podman (`podman system service`) on a private socket: the Docker-compatible API
that users of Podman point envctl at.

Its own storage, run and network folders and its own containers.conf, so that it shares
nothing with anything else; and its own network namespace, so that netavark's bridge and
firewall rules live there and the machine's (the shared Docker engine's) stay as they are.
The envctl under test and the clients that check its databases run in that namespace too
(`nsenter --net`), as they run next to the engine on a user's machine. It dies with the
process that started it (PR_SET_PDEATHSIG), also when that one crashes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 30.0


class CannotStart(Exception):
    """Podman could not start here: why."""


@dataclass(frozen=True)
class Podman:
    folder: Path
    pid: int  # the service's: its network namespace is /proc/PID/ns/net

    @property
    def socket(self) -> str:
        return f"unix://{self.folder}/podman.sock"

    @property
    def env(self) -> dict[str, str]:
        return {"CONTAINERS_CONF": str(self.folder / "containers.conf")}

    def cli(self) -> list[str]:
        """`podman` on this storage."""
        return [
            "podman",
            f"--root={self.folder}/root",
            f"--runroot={self.folder}/run",
            f"--tmpdir={self.folder}/tmp",
        ]

    def inside(self) -> list[str]:
        """The prefix that runs a command in the engine's network namespace."""
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", "--"]

    def run(
        self, argv: Sequence[str], env: Mapping[str, str], **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [*self.inside(), *argv],
            env=dict(env),
            capture_output=True,
            text=True,
            check=False,
            **kwargs,
        )


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def containers_conf(network_dir: Path | None = None) -> str:
    """A containers.conf for a Podman of the tests': limits it may set, no systemd or journald;
    netavark's networks under `network_dir`, if given."""
    # Podman raises the containers' nofile and nproc limits to its own maxima by default, which
    # a process without CAP_SYS_RESOURCE (a CI container) may not: runc fails with "error
    # setting rlimits". Lower ones, within what this process has, always work.
    _, nproc = resource.getrlimit(resource.RLIMIT_NPROC)
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
    conf = (
        "[containers]\n"
        f'default_ulimits = ["nofile=1024:1024", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'  # no systemd here
        'events_logger = "file"\n'  # nor journald
    )
    if network_dir is not None:
        conf += f'[network]\nnetwork_backend = "netavark"\nnetwork_config_dir = "{network_dir}"\n'
    return conf


@contextlib.contextmanager
def podman_engine(images: Mapping[str, str]) -> Iterator[Podman]:
    """Start Podman, load each `images` key (an image of the machine's Docker engine) into it
    under the value's name, and remove everything afterwards."""
    if os.getuid() != 0:
        raise CannotStart("a private rootful Podman needs root")
    for tool in ("podman", "docker", "unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            raise CannotStart(f"{tool} is not installed")
    # Unix socket paths are short (108 bytes): not under pytest's deep tmp folder.
    folder = Path(tempfile.mkdtemp(prefix="envctl-pm-", dir="/tmp"))
    (folder / "containers.conf").write_text(containers_conf(folder / "networks"))
    log = folder / "podman.log"
    process: subprocess.Popen[bytes] | None = None
    engine: Podman | None = None
    env = {**os.environ, "CONTAINERS_CONF": str(folder / "containers.conf")}
    try:
        service = [
            *Podman(folder, 0).cli(),
            "system",
            "service",
            "--time=0",
            f"unix://{folder}/podman.sock",
        ]
        script = 'ip link set lo up && exec "$@"'
        with log.open("wb") as output:
            process = subprocess.Popen(
                ["unshare", "--net", "sh", "-c", script, "sh", *service],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        engine = Podman(folder, process.pid)
        _wait_until_answering(engine, process, log)
        for source, name in images.items():
            _load(engine, source, name, env)
        yield engine
    finally:
        if engine is not None and process is not None and process.poll() is None:
            # Inside its namespace: netavark tears down there, never in the machine's.
            subprocess.run(
                [*engine.inside(), *engine.cli(), "rm", "--all", "--force", "--time=0"],
                env=env,
                capture_output=True,
                check=False,
                timeout=60,
            )
        if process is not None:
            _stop(process)
        _kill_leftovers(folder)
        remove_folder(folder)


def _wait_until_answering(engine: Podman, process: subprocess.Popen[bytes], log: Path) -> None:
    from docker import DockerClient
    from docker.errors import DockerException

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CannotStart(f"podman exited with {process.returncode}: {log_tail(log)}")
        if (engine.folder / "podman.sock").exists():
            with contextlib.suppress(DockerException):
                DockerClient(base_url=engine.socket, timeout=5).ping()
                return
        time.sleep(0.1)
    raise CannotStart(f"podman did not answer within {START_TIMEOUT:.0f}s: {log_tail(log)}")


def _load(engine: Podman, source: str, name: str, env: Mapping[str, str]) -> None:
    """`docker save SOURCE | podman load`, tagged NAME as the Docker API resolves it."""
    save = subprocess.Popen(["docker", "save", source], stdout=subprocess.PIPE)
    assert save.stdout is not None
    loaded = subprocess.run(
        [*engine.cli(), "load", "--quiet"],
        stdin=save.stdout,
        env=dict(env),
        capture_output=True,
        check=False,
        timeout=300,
    )
    save.stdout.close()
    if save.wait() != 0 or loaded.returncode != 0:
        raise CannotStart(f"could not load {source}: {loaded.stderr.decode(errors='replace')}")
    # Podman's Docker API takes a short name as Docker Hub's (docker.io/library/...).
    for tag in (name, f"docker.io/library/{name}"):
        tagged = subprocess.run(
            [*engine.cli(), "tag", source, tag], env=dict(env), capture_output=True, check=False
        )
        if tagged.returncode != 0:
            raise CannotStart(f"could not tag {tag}: {tagged.stderr.decode(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _kill_leftovers(folder: Path) -> None:
    """conmon and anything else of this Podman's that outlived it: their command lines name
    its (unique) folder."""
    found = subprocess.run(
        ["pgrep", "-f", "--", str(folder)], capture_output=True, text=True, check=False
    )
    for pid in found.stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def remove_folder(folder: Path) -> None:
    """The folder, after unmounting whatever Podman left mounted under it."""
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(str(folder))
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def log_tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-5:])
    except OSError:
        return "(no log)"
