"""A second dockerd on tcp://127.0.0.2 with TLS client certificates: a "remote" engine.

Its own data, exec and pid files, its own bridge on a subnet of its own and no iptables
rules, so that it shares nothing with the machine's engine (which other sessions use). It
dies with the process that started it (PR_SET_PDEATHSIG), also when that one crashes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from provisioner.tls import generate_certificates

ADDRESS = "127.0.0.2"
PREFERRED_PORT = 2376
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class SecondEngine:
    """Where the second engine answers, and the variables a client needs for it."""

    folder: Path
    port: int
    socket: str  # its local socket, for loading images

    @property
    def client_env(self) -> dict[str, str]:
        return {
            "DOCKER_HOST": f"tcp://{ADDRESS}:{self.port}",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(self.folder / "client"),
        }


class CannotStart(Exception):
    """The second engine could not start here: why."""


def _free_port() -> int:
    for port in (PREFERRED_PORT, 0):
        with socket.socket() as probe:
            try:
                probe.bind((ADDRESS, port))
            except OSError:
                continue
            found: int = probe.getsockname()[1]
            return found
    raise CannotStart(f"no free port on {ADDRESS}")


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _write_certificates(folder: Path) -> None:
    certs = generate_certificates(hostnames=[ADDRESS, "localhost"], client_user="envctl-test")
    server, client = folder / "server", folder / "client"
    server.mkdir()
    client.mkdir()
    for target in (server, client):
        (target / "ca.pem").write_bytes(certs.ca_cert)
    (server / "cert.pem").write_bytes(certs.server_cert)
    (server / "key.pem").write_bytes(certs.server_key)
    assert certs.client_cert is not None and certs.client_key is not None
    (client / "cert.pem").write_bytes(certs.client_cert)
    (client / "key.pem").write_bytes(certs.client_key)


@contextlib.contextmanager
def second_engine(images: list[str], *options: str) -> Iterator[SecondEngine]:
    """Start the second dockerd (with `options`), load `images` into it from the machine's
    engine, and stop it again afterwards, removing everything it made."""
    if os.getuid() != 0:
        raise CannotStart("a second dockerd needs root")
    for tool in ("dockerd", "docker", "ip"):
        if shutil.which(tool) is None:
            raise CannotStart(f"{tool} is not installed")
    # Unix socket paths are short (108 bytes): not under pytest's deep tmp folder.
    folder = Path(tempfile.mkdtemp(prefix="envctl-d2-", dir="/tmp"))
    if any(option.startswith("--userns-remap") for option in options):
        folder.chmod(0o711)  # the remapped root must pass through to its data folder
    bridge = f"envctl{os.getpid() % 100000}"  # at most 15 characters
    octet = 20 + os.getpid() % 200  # a subnet of this session's own: 10.<octet>.0.0/16
    log = folder / "dockerd.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        _write_certificates(folder)
        port = _free_port()
        engine = SecondEngine(folder, port, f"unix://{folder}/docker.sock")
        subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"10.{octet}.255.1/24", "dev", bridge], check=True)
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    "dockerd",
                    f"--data-root={folder}/data",
                    f"--exec-root={folder}/exec",
                    f"--pidfile={folder}/dockerd.pid",
                    f"--host={engine.socket}",
                    f"--host=tcp://{ADDRESS}:{port}",
                    "--tlsverify",
                    f"--tlscacert={folder}/server/ca.pem",
                    f"--tlscert={folder}/server/cert.pem",
                    f"--tlskey={folder}/server/key.pem",
                    # The default bridge envctl's servers use, on a bridge of its own; no
                    # iptables rules, so the machine's engine's stay as they are. Ports are
                    # published by docker-proxy, which binds on the host.
                    f"--bridge={bridge}",
                    "--iptables=false",
                    "--ip-masq=false",
                    f"--default-address-pool=base=10.{octet}.0.0/17,size=24",
                    *options,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        _wait_until_answering(engine, process, log)
        for image in images:
            _load(image, engine)
        yield engine
    finally:
        if process is not None:
            _stop(process)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        _remove(folder)


def _docker(
    engine: SecondEngine, *args: str, **kwargs: object
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DOCKER_HOST": engine.socket}
    env.pop("DOCKER_CONTEXT", None)
    return subprocess.run(["docker", *args], env=env, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


def _wait_until_answering(
    engine: SecondEngine, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CannotStart(f"dockerd exited with {process.returncode}: {_tail(log)}")
        if _docker(engine, "version", timeout=10).returncode == 0:
            return
        time.sleep(0.2)
    raise CannotStart(f"dockerd did not answer within {START_TIMEOUT:.0f}s: {_tail(log)}")


def _load(image: str, engine: SecondEngine) -> None:
    """`docker save IMAGE | DOCKER_HOST=<second> docker load`."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    assert save.stdout is not None
    loaded = _docker(engine, "load", stdin=save.stdout, timeout=300)
    save.stdout.close()
    if save.wait() != 0 or loaded.returncode != 0:
        raise CannotStart(f"could not load {image}: {loaded.stderr.decode(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (dockerd stops its containers and its containerd), then SIGKILL the group."""
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _remove(folder: Path) -> None:
    """The folder, after unmounting whatever dockerd left mounted under it."""
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(str(folder))
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-5:])
    except OSError:
        return "(no log)"
