"""Finding the Docker engine: every place users' tools put one, in a documented order.

The order (README, Runtimes): DOCKER_HOST; the current Docker context (DOCKER_CONTEXT, else
config.json's currentContext); rootless Docker; Podman, rootful then rootless; the sockets of
Docker Desktop, colima, OrbStack and Rancher Desktop; /var/run/docker.sock. DOCKER_HOST and a
context are the user's choice, as the docker CLI reads them: when they are set, nothing else is
tried (a silent fallback would start the database on another engine than the one meant).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import ipaddress
import json
import os
import socket
import stat
import struct
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.errors import DockerUnavailableError, first_line
from provisioner.runtime.engine import (
    Engine,
    EngineError,
    EngineUnreachable,
    SdkSession,
    UnixSocket,
)

DEFAULT_SOCKET = "/var/run/docker.sock"
MIN_API_VERSION = (1, 25)  # the Engine API fields envctl reads are stable since 1.25
HOST_OVERRIDES = ("ENVCTL_HOST_OVERRIDE", "TESTCONTAINERS_HOST_OVERRIDE")
PING_TIMEOUT = 3.0
# How envctl (through the SDK and paramiko) reaches an ssh:// engine, for the hint of one that
# does not answer.
SSH_HINT = (
    "envctl reaches ssh:// engines with paramiko, which reads ~/.ssh/config (HostName, Port, "
    "User, IdentityFile, ProxyCommand), ~/.ssh/known_hosts, your keys and the agent: "
    "`{login} docker version` must work without a prompt"
)


@dataclass(frozen=True)
class Tls:
    """TLS material for a tcp:// engine: file paths, as the SDK takes them."""

    ca: str | None
    cert: str | None
    key: str | None
    verify: bool


@dataclass(frozen=True)
class Candidate:
    """A place an engine may answer, and where envctl learned of it."""

    source: str
    address: str
    explicit: bool = False  # the user's choice: DOCKER_HOST or a context
    tls: Tls | None = None
    problem: str | None = None  # why it cannot be used at all (a context without endpoint)
    hint: str | None = None

    @property
    def socket_path(self) -> str | None:
        return self.address.removeprefix("unix://") if self.address.startswith("unix://") else None


@dataclass(frozen=True)
class Probe:
    """What one candidate did when asked: found (the socket exists), answered, and why not."""

    candidate: Candidate
    found: bool
    answered: bool
    detail: str
    hint: str | None = None
    api_version: str | None = None


def candidates(
    environ: Mapping[str, str] = os.environ, home: Path | None = None
) -> list[Candidate]:
    """Every place to look, in order; the user's choice (DOCKER_HOST, a context) alone if set."""
    home = home if home is not None else Path(environ.get("HOME") or Path.home())
    host = environ.get("DOCKER_HOST", "").strip()
    if host:
        return [Candidate("DOCKER_HOST", _normalized(host), explicit=True, tls=_env_tls(environ))]
    context = current_context(environ, home)
    if context is not None:
        return [context]
    found: list[Candidate] = []
    runtime_dir = environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        found.append(Candidate("rootless Docker", f"unix://{runtime_dir}/docker.sock"))
    found.append(Candidate("Podman (rootful)", "unix:///run/podman/podman.sock"))
    if runtime_dir:
        found.append(Candidate("Podman (rootless)", f"unix://{runtime_dir}/podman/podman.sock"))
    for source, path in (
        ("Docker Desktop", ".docker/run/docker.sock"),
        ("colima", ".colima/default/docker.sock"),
        ("colima (old layout)", ".colima/docker.sock"),
        ("OrbStack", ".orbstack/run/docker.sock"),
        ("Rancher Desktop", ".rd/docker.sock"),
    ):
        found.append(Candidate(source, f"unix://{home / path}"))
    found.append(Candidate("the default socket", f"unix://{DEFAULT_SOCKET}"))
    return found


def docker_config_dir(environ: Mapping[str, str], home: Path) -> Path:
    return Path(environ.get("DOCKER_CONFIG") or home / ".docker")


def current_context(environ: Mapping[str, str], home: Path) -> Candidate | None:
    """The current Docker context's endpoint, or None for `default` (the local engine)."""
    config = docker_config_dir(environ, home)
    name = environ.get("DOCKER_CONTEXT", "").strip()
    source = "DOCKER_CONTEXT"
    if not name:
        try:
            name = str(json.loads((config / "config.json").read_text()).get("currentContext", ""))
        except (OSError, ValueError, AttributeError):
            name = ""
        source = f"{config / 'config.json'} currentContext"
    if not name or name == "default":
        return None
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest / "meta.json"
    label = f"context {name} ({source})"
    try:
        endpoint = json.loads(meta.read_text())["Endpoints"]["docker"]
        address = str(endpoint["Host"])
    except (OSError, ValueError, KeyError, TypeError):
        return Candidate(
            label,
            "",
            explicit=True,
            problem=f"Docker context '{name}' ({source}) has no docker endpoint in {meta}",
            hint=f"`docker context ls` shows the contexts; `docker context use default`, or "
            f"unset {'DOCKER_CONTEXT' if source == 'DOCKER_CONTEXT' else 'currentContext'}",
        )
    tls_dir = config / "contexts" / "tls" / digest / "docker"
    tls = None
    if tls_dir.is_dir() or endpoint.get("SkipTLSVerify"):
        tls = Tls(
            ca=_existing(tls_dir / "ca.pem"),
            cert=_existing(tls_dir / "cert.pem"),
            key=_existing(tls_dir / "key.pem"),
            verify=not endpoint.get("SkipTLSVerify", False),
        )
    return Candidate(label, _normalized(address), explicit=True, tls=tls)


def probe(candidate: Candidate, timeout: float) -> Probe:
    """Ask `candidate`'s engine for its version: whether it is there and answers."""
    if candidate.problem:
        return Probe(candidate, False, False, candidate.problem, candidate.hint)
    if _is_ssh(candidate) and importlib.util.find_spec("paramiko") is None:
        detail = "the docker SDK reaches ssh:// engines only with paramiko installed"
        return Probe(candidate, False, False, detail, "pip install 'envctl[ssh]'")
    path = candidate.socket_path
    if path is not None:
        if not os.path.exists(path):
            return Probe(candidate, False, False, "no socket there")
        refused = _refusal(path, timeout)
        if refused is not None:
            return Probe(candidate, True, False, *refused)
    try:
        engine = connect(candidate, timeout)
        version = engine.request("GET", "/version", timeout=timeout)
    except (EngineUnreachable, EngineError) as exc:
        hint = SSH_HINT.format(login=_ssh_login(candidate.address)) if _is_ssh(candidate) else None
        return Probe(candidate, path is not None, False, str(exc), hint)
    api = str(version.get("ApiVersion", "0"))
    product = (version.get("Components") or [{}])[0].get("Name", "Engine")
    product = "Docker Engine" if product == "Engine" else product  # Podman: "Podman Engine"
    if _version_tuple(api) < MIN_API_VERSION:
        return Probe(
            candidate,
            True,
            False,
            f"engine {version.get('Version', '?')} speaks Engine API {api}, older than the "
            f"{_dotted(MIN_API_VERSION)} envctl needs",
            "upgrade the engine (Docker 17.05 or newer), or use `runtime: native`",
            api,
        )
    return Probe(
        candidate, True, True, f"{product} {version.get('Version', '?')}, API {api}", None, api
    )


def connect(candidate: Candidate, timeout: float) -> Engine:
    """An Engine for `candidate` (not yet pinged; the SDK's is)."""
    if candidate.socket_path is not None and candidate.tls is None:
        return Engine(UnixSocket(candidate.socket_path), address=candidate.address)
    return Engine(SdkSession(sdk_connect(candidate, timeout)), address=candidate.address)


@dataclass(frozen=True)
class Survey:
    """Every candidate asked (in order, up to the chosen one unless asked for all) and the pick."""

    probes: list[Probe]
    chosen: Probe | None
    reason: str


def survey(timeout: float, every: bool = False, environ: Mapping[str, str] = os.environ) -> Survey:
    """Ask the candidates in order; the first that answers is chosen. `every`: ask the rest too,
    to show them (`envctl runtimes`, `doctor`)."""
    probes: list[Probe] = []
    chosen: Probe | None = None
    for candidate in candidates(environ):
        if chosen is not None and not every:
            break
        if not candidate.socket_path or os.path.exists(candidate.socket_path) or every:
            result = probe(candidate, timeout)
        else:
            result = Probe(candidate, False, False, "no socket there")
        probes.append(result)
        if chosen is None and result.answered:
            chosen = result
    if chosen is None:
        return Survey(probes, None, "nothing answered")
    first = chosen.candidate
    if first.explicit:
        reason = f"{first.source} names it"
    else:
        skipped = [p for p in probes[: probes.index(chosen)] if p.found]
        reason = "the first in envctl's order that answers"
        if skipped:
            reason += " (" + "; ".join(f"{p.candidate.address}: {p.detail}" for p in skipped) + ")"
    return Survey(probes, chosen, reason)


def choose(timeout: float, environ: Mapping[str, str] = os.environ) -> Probe:
    """The engine to use, or DockerUnavailableError saying what was found and why none answers."""
    found = survey(timeout, environ=environ)
    if found.chosen is not None:
        return found.chosen
    raise unavailable(found.probes)


def unavailable(probes: list[Probe]) -> DockerUnavailableError:
    """The error for no engine: the nearest miss (one that exists) first, with its fix."""
    there = [p for p in probes if p.found or p.candidate.explicit]
    if there:
        first = there[0]
        if first.candidate.problem:
            return DockerUnavailableError(first.candidate.problem, hint=first.candidate.hint)
        where = first.candidate.address or first.candidate.source
        return DockerUnavailableError(
            f"no Docker engine answers at {where} ({first.candidate.source}: {first.detail})",
            hint=first.hint
            or "start the engine, check DOCKER_HOST or `docker context ls`, or use "
            "`runtime: native`",
        )
    looked = ", ".join(p.candidate.socket_path or p.candidate.address for p in probes)
    return DockerUnavailableError(
        f"no Docker engine found (no socket at any of {looked})",
        hint="start Docker or Podman (e.g. `sudo systemctl start docker`), set DOCKER_HOST, "
        "or use `runtime: native`",
    )


# --- clients of an engine: the Engine API's own (engine.py), or the `docker` SDK's -----


def docker_engine(timeout: float = PING_TIMEOUT) -> Engine:
    """The engine discovery chooses (DOCKER_HOST, the context, the known sockets), once it has
    answered, or DockerUnavailableError saying what was found and why none answered."""
    return connect(choose(timeout).candidate, timeout)


def docker_client(timeout: float = PING_TIMEOUT) -> Any:
    """A client of the `docker` SDK for the engine discovery chooses, once it
    has answered a ping, or DockerUnavailableError."""
    return sdk_client(choose(timeout).candidate, timeout)


def sdk_client(candidate: Candidate, timeout: float = PING_TIMEOUT) -> Any:
    """A pinged `docker` SDK client of `candidate`'s engine, or DockerUnavailableError."""
    try:
        return sdk_connect(candidate, timeout)
    except EngineUnreachable as exc:
        raise _unavailable(candidate, str(exc)) from None


def sdk_connect(candidate: Candidate, timeout: float = PING_TIMEOUT) -> Any:
    """A pinged `docker` SDK client of `candidate`'s engine, or EngineUnreachable (why not)."""
    from docker.errors import DockerException

    try:
        # The engine's API version is asked first with a client that speaks the oldest one
        # envctl supports, as the SDK's version="auto" would, but after _own_ca below.
        first = _sdk_client(candidate, timeout, ".".join(map(str, MIN_API_VERSION)))
        client = _sdk_client(candidate, timeout, first.version(api_version=False)["ApiVersion"])
        client.ping()
    except Exception as exc:
        # paramiko's own errors (a refused key, an unknown host key) come out of the SDK as
        # they are; it is imported only for an ssh:// engine.
        paramiko = sys.modules.get("paramiko")
        ssh_error = paramiko is not None and isinstance(exc, paramiko.SSHException)
        if not (ssh_error or isinstance(exc, DockerException | OSError | KeyError)):
            raise
        import re

        detail = re.search(r"\[Errno -?\d+\] [^)\"'\]]+", str(exc))
        raise EngineUnreachable(detail[0] if detail else first_line(exc)) from None
    client.api.timeout = 120
    return client


def _sdk_client(candidate: Candidate, timeout: float, version: str) -> Any:
    import docker

    seconds = max(int(timeout), 1)
    tls: Any = False
    if candidate.tls is not None:
        material = candidate.tls
        pair = (material.cert, material.key) if material.cert and material.key else None
        tls = docker.tls.TLSConfig(
            client_cert=pair,
            ca_cert=material.ca,
            verify=material.ca if material.verify and material.ca else material.verify,
        )
    client = docker.DockerClient(
        base_url=_sdk_address(candidate.address), tls=tls, version=version, timeout=seconds
    )
    if client.api.verify not in (True, False, None):
        # _own_ca: requests lets REQUESTS_CA_BUNDLE (set on many machines) replace the
        # session's own CA file on every request, so the engine's CA would never be asked.
        client.api.trust_env = False
    return client


def _sdk_address(address: str) -> str:
    """`address` as the SDK is given it: an ssh:// address without a port gets its host's Port
    from ~/.ssh/config, which the SDK would never read (it puts 22 there first)."""
    parts = urllib.parse.urlsplit(address)
    if parts.scheme != "ssh" or parts.port or not parts.hostname:
        return address
    port = _ssh_config(parts.hostname).get("port")
    return address if port is None else parts._replace(netloc=f"{parts.netloc}:{port}").geturl()


def _is_ssh(candidate: Candidate) -> bool:
    return candidate.address.startswith("ssh://")


def _ssh_login(address: str) -> str:
    """The `ssh` command line that reaches the engine host of an ssh:// address."""
    parts = urllib.parse.urlsplit(address)
    port = f"-p {parts.port} " if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"ssh {port}{user}{parts.hostname}"


def _unavailable(candidate: Candidate, detail: str) -> DockerUnavailableError:
    return DockerUnavailableError(
        f"no Docker engine answers at {candidate.address} ({candidate.source}: {detail})",
        hint="start Docker (e.g. `sudo systemctl start docker`), check DOCKER_HOST or "
        "`docker context ls`, or use `runtime: native`",
    )


@dataclass(frozen=True)
class Placement:
    """Where the server's port binds on the engine's host, and the address clients use."""

    bind_host: str
    client_host: str
    warning: str | None = None


def engine_host(address: str) -> str | None:
    """The host of a remote engine's address (tcp://, ssh://, http(s)://), None for a socket."""
    parts = urllib.parse.urlsplit(address)
    if parts.scheme == "ssh" and parts.hostname:
        return _ssh_hostname(parts.hostname)
    if parts.scheme in ("tcp", "http", "https") and parts.hostname:
        return parts.hostname
    return None


def _ssh_hostname(host: str) -> str:
    """The address an ssh host alias stands for (its HostName in ~/.ssh/config), as the SDK's
    paramiko connection resolves it: `ssh://build-box` is where clients must go only if
    build-box is a name they can resolve."""
    return str(_ssh_config(host).get("hostname", host))


def _ssh_config(host: str) -> dict[str, Any]:
    """What ~/.ssh/config says of `host` (hostname, port, user...), read as the SDK reads it
    (with paramiko); empty without a config or paramiko."""
    config = Path(os.path.expanduser("~/.ssh/config"))
    if not config.is_file() or importlib.util.find_spec("paramiko") is None:
        return {}
    import paramiko

    try:
        return dict(paramiko.SSHConfig.from_path(str(config)).lookup(host))
    except (OSError, paramiko.ConfigParseError):
        return {}


def on_this_machine(address: str) -> bool:
    """Whether the engine at `address` publishes ports on this machine (a socket, loopback)."""
    host = engine_host(address)
    return host is None or _is_loopback(host) is True


# The engines whose containers on the "host" network share the network of the process that
# serves their socket: Docker Desktop's socket is served by a proxy on this machine, its engine
# runs in a virtual machine; rootless Docker's daemon runs in a network namespace of its own.
NETWORK_SHARING_SERVERS = frozenset({"dockerd", "podman"})


@functools.cache
def shares_network(address: str) -> bool:
    """Whether a container of the engine at `address` on the "host" network shares this
    process's network: its Unix socket is served by dockerd or podman itself (no proxy, no VM)
    in the network namespace this process is in.

    The namespace is compared where it can be read (envctl is root, or the engine is its
    user's); otherwise, for a rootful engine, the socket must be one of this namespace's own
    (/proc/net/unix lists those: not a rootless daemon's, made in a namespace of its own).
    False whenever that cannot be seen: another transport, the server's process in another PID
    namespace (no peer ID).
    """
    peer_credentials = getattr(socket, "SO_PEERCRED", None)  # Linux only
    path = address.removeprefix("unix://")
    if not address.startswith("unix://") or peer_credentials is None:
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(1.0)
        sock.connect(path)
        credentials = sock.getsockopt(socket.SOL_SOCKET, peer_credentials, struct.calcsize("3i"))
        pid = struct.unpack("3i", credentials)[0]
        if pid <= 0:
            return False
        # comm, unlike exe, is readable by anyone.
        server = Path(f"/proc/{pid}/comm").read_text().strip()
        if server not in NETWORK_SHARING_SERVERS:
            return False
        try:
            return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
        except PermissionError:
            return _socket_of_this_network(path)
    except OSError:
        return False
    finally:
        sock.close()


def _socket_of_this_network(path: str) -> bool:
    """Whether a Unix socket bound at `path` was made in this process's network namespace."""
    wanted = os.path.realpath(path)
    with open("/proc/net/unix") as listing:
        for line in listing:
            fields = line.split()
            if len(fields) >= 8 and os.path.realpath(fields[7]) == wanted:
                return True
    return False


def placement(address: str, bind_host: str, environ: Mapping[str, str] = os.environ) -> Placement:
    """The bind and client addresses for a server on the engine at `address`.

    A local engine: the profile's bind address, reached on loopback. A remote one: the engine
    host's loopback is out of reach, so the port binds on the engine host's own address (an IP)
    or on every interface (a name); clients use the engine's host. ENVCTL_HOST_OVERRIDE (or
    TESTCONTAINERS_HOST_OVERRIDE) names the client address instead, e.g. behind NAT.
    """
    override = next((environ[name] for name in HOST_OVERRIDES if environ.get(name)), None)
    remote = engine_host(address)
    local_client = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_host, bind_host)
    if remote is None or _is_loopback(bind_host) is False:
        return Placement(bind_host, override or (local_client if remote is None else remote))
    # The port binds on the address clients are given, when that is an IP (the override's
    # is meant to be one of the engine host's); a name is resolved elsewhere: every interface.
    client = override or remote
    if _is_loopback(client):
        return Placement("127.0.0.1" if client == "localhost" else client, client)
    try:
        ipaddress.ip_address(client)
        bind = client
        exposed = f"on {client}"
    except ValueError:
        bind = "0.0.0.0"
        exposed = f"on every interface of {remote}"
    return Placement(
        bind,
        client,
        f"warning: the Docker engine at {address} is remote: the database's port is published "
        f"{exposed}, reachable by whoever reaches that host; only its password (random unless "
        "the profile sets one) protects it",
    )


def socket_group_hint(path: str) -> str:
    """The fix for a socket this user may not open: join its group."""
    import grp  # POSIX only: envctl and its plugin also load on Windows

    try:
        group = grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):
        group = "docker"
    return f"`sudo usermod -aG {group} $USER`, then log in again (the socket belongs to {group})"


def _refusal(path: str, timeout: float) -> tuple[str, str | None] | None:
    """Why the socket at `path` refuses a connection (permissions, nobody listening), or None."""
    if not stat.S_ISSOCK(os.stat(path).st_mode):
        return f"{path} is not a socket", None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except PermissionError:
        return (
            "permission denied: this user may not open the socket",
            socket_group_hint(path),
        )
    except OSError as exc:
        return f"refused ({exc.strerror or exc}): nothing listens on the socket", None
    finally:
        sock.close()
    return None


def _normalized(address: str) -> str:
    if address.startswith("/"):
        return f"unix://{address}"
    return address


def _env_tls(environ: Mapping[str, str]) -> Tls | None:
    """DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, read as the docker CLI and SDK read them."""
    verify = environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    cert_path = environ.get("DOCKER_CERT_PATH")
    if not verify and not cert_path:
        return None
    folder = Path(cert_path or Path(environ.get("HOME", "~")).expanduser() / ".docker")
    return Tls(
        ca=_existing(folder / "ca.pem"),
        cert=_existing(folder / "cert.pem"),
        key=_existing(folder / "key.pem"),
        verify=verify,
    )


def _existing(path: Path) -> str | None:
    return str(path) if path.is_file() else None


def _is_loopback(host: str) -> bool | None:
    """Whether `host` is a loopback address; None for a name."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return None


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)
