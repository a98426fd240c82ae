"""The Docker runtime: one container and one network per environment, found again by label."""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import shutil
import socket
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from provisioner.connection import Connection
from provisioner.errors import (
    AlreadyRunningError,
    InfrastructureError,
    PortInUseError,
    ProfileError,
    first_line,
)
from provisioner.ports import port_free, reserve_port
from provisioner.runtime import (
    ExecResult,
    FoundEnvironment,
    ServerFile,
    ServerSpec,
    StartedServer,
)
from provisioner.runtime.docker_cache import CACHED_PGDATA, DockerCache, container_gone
from provisioner.runtime.engine import Engine, EngineError, SdkSession, guarded_calls
from provisioner.runtime.engines import (
    Candidate,
    Placement,
    docker_engine,
    on_this_machine,
    placement,
    sdk_client,
    shares_network,
)
from provisioner.runtime.labels import (
    ENV_LABEL,
    MANAGED_LABEL,
    PORT_LABEL,
    ROLE_LABEL,
    container_name,
)

log = logging.getLogger(__name__)

# envctl's files for the server (certificates, its key, pg_hba) arrive in FILES_INBOX and the
# boot script moves them to CONFIG_DIR, on the container's own tmpfs, where no commit of a
# cache entry reaches them.
FILES_INBOX = "/etc/envctl"
CONFIG_DIR = "/dev/shm/envctl"
PASSWORD_FILE = "password"
INBOX = "/tmp/envctl"  # where copy_in puts seed files
SOCKET_DIR = "/var/run/postgresql"
SERVER_USER = "postgres"
SERVER_UID = 999  # the official image's postgres user, which our test images copy
NETWORK_ALIAS = "postgres"  # the server's name on its environment's network
SERVER_PORT = 5432  # its port inside the container, on that network
# The data folder in memory: of a start that keeps nothing, or of a start from the cache whose
# suite makes databases from the templates (a copy of the entry's, see _create_container).
MEMORY_PGDATA = "/var/lib/envctl/memory"
# The largest data folder from the cache that is copied into memory (512 MiB), in KiB (du -sk).
MEMORY_COPY_MAX_KB = 512 * 1024
SHM_SIZE = 256 * 1024 * 1024  # Docker's default of 64 MiB is too little for parallel queries


@guarded_calls
class DockerRuntime:
    """Runs each environment's server in a container of the profile's image."""

    name = "docker"

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine if engine is not None else docker_engine()
        self._counter = 0
        self.cache = DockerCache(self.engine, lambda: self.client, self.ensure_image)

    @functools.cached_property
    def client(self) -> Any:
        """The `docker` SDK's client, for what streams: pulls, exec, logs, suite containers."""
        if isinstance(self.engine.transport, SdkSession):
            return self.engine.transport.client
        return sdk_client(Candidate("the engine in use", self.engine.address))

    def placement(self, bind_host: str) -> Placement:
        """Where the port binds and clients connect: the engine's host when it is remote."""
        return placement(self.engine.address, bind_host)

    def server_names(self, env_id: str) -> tuple[str, ...]:
        return (NETWORK_ALIAS, container_name(env_id))

    def describe(self, image: str) -> str:
        return image

    def in_network(self, connection: Connection) -> Connection:
        return dataclasses.replace(connection, host=NETWORK_ALIAS, port=SERVER_PORT)

    def config_dir(self, env_id: str) -> str:
        return CONFIG_DIR

    def start(
        self, spec: ServerSpec, meanwhile: Callable[[], object] | None = None
    ) -> StartedServer:
        if spec.from_cache:
            spec = dataclasses.replace(spec, image=spec.from_cache)  # just looked up: it is here
        else:
            self.ensure_image(spec.image)
        # Never in the container's environment: `docker inspect` shows that to anyone who may
        # use the engine, and a commit of a cache entry would keep it in the image.
        password = ServerFile(PASSWORD_FILE, spec.password.encode(), 0o600)
        spec = dataclasses.replace(spec, files=(*spec.files, password))
        host_port = None
        reservation = None
        if self._on_host_network(spec):
            reservation = self._reserve_port(spec.bind_host, spec.port)
            host_port = int(reservation.getsockname()[1])
        elif spec.port is not None and on_this_machine(self.engine.address):
            # The probe binds here: a remote engine's ports are its host's, not this machine's.
            self._check_port_free(spec.bind_host, spec.port)
        name = container_name(spec.env_id)
        try:
            # On Docker's default bridge: a network of its own costs a tenth of a second, so
            # it is made only when a suite container has to join (see _environment_network).
            try:
                container = self._create_container(spec, name, host_port)
            except EngineError as exc:
                if host_port is None or exc.status == 409:
                    raise
                # An engine may refuse this machine's network: one that remaps user
                # namespaces does ("cannot share the host's network namespace").
                log.info("the engine refused this machine's network: %s", first_line(exc))
                _let_go(reservation)
                reservation = host_port = None
                container = self._create_container(spec, name, None)
            if spec.files:
                self.engine.put_archive(container, "/etc", _config_archive(spec))
            # The engine's start of a container takes a fifth of a second: meanwhile is then.
            self.engine.request("POST", f"/containers/{container}/start", meanwhile=meanwhile)
            info = self.engine.container(container)
            if info is None:
                raise container_gone(spec.env_id)  # removed meanwhile, by `envctl gc` or by hand
            port = host_port or int(info["NetworkSettings"]["Ports"]["5432/tcp"][0]["HostPort"])
        except EngineError as exc:
            _let_go(reservation)
            self.remove(spec.env_id)
            message = first_line(exc)
            if exc.status == 409:
                raise AlreadyRunningError(
                    f"an environment '{spec.env_id}' is being started by another envctl"
                ) from None
            if "port is already allocated" in message or "address already in use" in message:
                raise PortInUseError(
                    f"port {spec.port} on {spec.bind_host} is already in use",
                    hint="choose another postgres.port, or `port: auto`",
                ) from None
            raise InfrastructureError(f"Docker could not start the database: {message}") from None
        except BaseException:
            _let_go(reservation)
            self.remove(spec.env_id)
            raise
        return StartedServer(
            port=port,
            details={"container": container[:12]},
            release=functools.partial(_let_go, reservation),
        )

    def _on_host_network(self, spec: ServerSpec) -> bool:
        """Whether the server's container shares this machine's network: a fifth of a second
        less for the engine's start (no network namespace, no bridge, no port proxy).

        Only on an engine whose host network is this machine's (engines.shares_network), and
        not for a server that needs its own: a suite container joins it, or it runs SQL of a
        seed, which on this machine's network could reach services that listen on loopback
        only (`COPY ... FROM PROGRAM`). A start from the cache runs nothing but the cluster.
        Nor for a cluster being kept: a cache entry is committed from a container as the
        image made it (listening everywhere inside it, on 5432), so that it starts anywhere.
        """
        storing = spec.cacheable and not spec.from_cache
        if spec.restores_seeds or spec.joined or storing:
            return False
        return shares_network(self.engine.address)

    def _reserve_port(self, host: str, port: int | None) -> socket.socket:
        """The port the server listens on, held here until it is ready (ports.reserve_port)."""
        if port is not None:
            self._check_port_free(host, port)
        try:
            return reserve_port(host, port)
        except OSError as exc:
            raise PortInUseError(
                f"port {port or 'auto'} on {host} cannot be bound: {exc.strerror or exc}",
                hint="choose another postgres.port, or `port: auto`",
            ) from None

    def _create_container(self, spec: ServerSpec, name: str, host_port: int | None) -> str:
        """Create the server's container (on this machine's network when `host_port` is
        given, listening there); its ID."""
        # On a network of its own, settings go last, so that the profile's own
        # listen_addresses would win: the port binding on the host limits who reaches it.
        command = [] if host_port else ["-c", "listen_addresses=*"]
        for key, value in spec.settings.items():
            command += ["-c", f"{key}={value}"]
        if host_port:
            # On this machine's network, what it listens on is the only limit: ours last.
            command += ["-c", f"listen_addresses={spec.bind_host}", "-c", f"port={host_port}"]
        initdb_args = [f"--locale={spec.locale}", f"--encoding={spec.encoding}"]
        if spec.disposable:
            initdb_args.append("--no-sync")  # a fifth of a second, for data nobody keeps
            # A container from a cache entry writes its first WAL into a segment of the
            # image's layer, which overlayfs copies up whole first: 15 ms for 16 MB, 1 for 1.
            initdb_args.append("--wal-segsize=1")
        environment = {
            "POSTGRES_USER": spec.user,
            "POSTGRES_DB": spec.database,
            "POSTGRES_INITDB_ARGS": " ".join([*initdb_args, *spec.initdb_args]),
            "POSTGRES_PASSWORD_FILE": f"{CONFIG_DIR}/{PASSWORD_FILE}",
        }
        in_memory = False
        if spec.cacheable:
            environment["PGDATA"] = CACHED_PGDATA
            if spec.from_cache and spec.disposable and spec.makes_databases:
                # A suite that makes databases from the templates (template1's for Medusa's
                # runner, one per test file; per-worker databases, resets, per-test clones)
                # has Postgres copy a migrated schema's ~1,500 files each time, which in the
                # image's layer takes a second on a slow disk (overlayfs: 150 us an open),
                # 50 ms in memory. So the entry's data folder is copied into memory first
                # (0.2 s for the 78 MB of a 200-migration schema), when it is at most
                # MEMORY_COPY_MAX_KB; nothing of it is kept: the entry is.
                environment["ENVCTL_MEMORY_FROM"] = CACHED_PGDATA
                environment["ENVCTL_MEMORY_MAX_KB"] = str(MEMORY_COPY_MAX_KB)
                in_memory = True
        elif spec.disposable and not spec.restores_seeds:
            # Nothing of it is kept, nothing survives a crash, and no seed may fill it: the
            # data in memory. initdb takes 0.4 s there, 1.0 s on a slow disk, CREATE DATABASE
            # 30 ms instead of a quarter of a second; the cost is its size in memory (40 MB,
            # and what the suite writes), for the environment's life.
            in_memory = True
        tmpfs = {}
        if in_memory:
            environment["PGDATA"] = MEMORY_PGDATA
            tmpfs[MEMORY_PGDATA] = "rw,nosuid,nodev,noexec,mode=0700"
        if spec.from_cache:
            environment["ENVCTL_CACHED"] = "1"  # its database exists: the boot script skips it
        labels = dict(spec.labels)
        if host_port:
            # The server, its helper and every tool run in the container (exec) use PGPORT.
            environment["PGPORT"] = str(host_port)
            labels[PORT_LABEL] = str(host_port)
        config: dict[str, Any] = {
            "Image": spec.image,
            "Entrypoint": ["bash", "-c", _boot_script(), "envctl-boot"],
            "Cmd": command,
            "Env": [f"{key}={value}" for key, value in environment.items()],
            "Labels": labels,
            "HostConfig": {"ShmSize": SHM_SIZE, **({"Tmpfs": tmpfs} if tmpfs else {})},
        }
        if host_port:
            config["HostConfig"]["NetworkMode"] = "host"
        else:
            config["ExposedPorts"] = {"5432/tcp": {}}
            config["HostConfig"]["PortBindings"] = {
                "5432/tcp": [{"HostIp": spec.bind_host, "HostPort": str(spec.port or "")}]
            }
        query = {"name": name}
        created = self.engine.request("POST", "/containers/create", query, json_body=config)
        return str(created["Id"])

    def _environment_network(self, env_id: str, alias: str) -> str:
        """The environment's own network, made on first use, with the server on it as `alias`."""
        from docker.errors import APIError, NotFound

        name = container_name(env_id)
        try:
            self.client.networks.get(name)
            return name
        except NotFound:
            pass
        database = self._container(env_id)
        try:
            network = self.client.networks.create(
                name, driver="bridge", labels=dict(database.labels), check_duplicate=True
            )
        except APIError as exc:
            raise InfrastructureError(f"cannot create network {name}: {first_line(exc)}") from None
        network.connect(database, aliases=[alias])
        return name

    def ensure_image(self, image: str) -> dict[str, Any]:
        """The inspection of image `image`, pulled first if it is not here."""
        found = self.engine.image(image)
        if found is not None:
            return found
        from docker.errors import APIError

        try:
            from provisioner.progress import progress

            with progress(f"pulling image {image} (once; it may take a minute)"):
                self.client.images.pull(image)  # the SDK knows the credentials in ~/.docker
            found = self.engine.image(image)
            if found is None:
                raise InfrastructureError(f"image '{image}' was pulled, then it was gone")
            return found
        except APIError as exc:
            raise ProfileError(
                f"image '{image}' is not present and cannot be pulled ({first_line(exc)})",
                hint="check postgres.version / postgres.image, or point ENVCTL_POSTGRES_IMAGE "
                "at a registry you can reach (e.g. mirror.example/postgres:{major})",
            ) from None

    def _check_port_free(self, host: str, port: int) -> None:
        if port_free(host, port):
            return
        holder = self.container_publishing(port)
        who = f"container '{holder}'" if holder else "another process"
        raise PortInUseError(
            f"port {port} on {host} is already in use by {who}",
            hint="stop it, choose another postgres.port, or use `port: auto`",
        )

    def container_publishing(self, port: int) -> str | None:
        """The name of the container that publishes `port` on this engine, if one does."""
        for container in self.engine.containers([]):
            labels = container.get("Labels") or {}
            if labels.get(PORT_LABEL) == str(port):  # on this machine's network
                return _name(container)
            for binding in container.get("Ports") or []:
                if binding.get("PublicPort") == port:
                    return _name(container)
        return None

    def failure(self, env_id: str) -> str | None:
        info = self.engine.container(container_name(env_id))
        if info is None:
            return "the container is gone"
        state = info.get("State") or {}
        status = state.get("Status", "unknown")
        if status in ("running", "created"):
            return None
        return f"container {status}, exit code {state.get('ExitCode')}"

    def log_tail(self, env_id: str, lines: int = 40) -> str:
        from docker.errors import APIError, NotFound

        try:
            container = self.client.containers.get(container_name(env_id))
            raw: bytes = container.logs(tail=lines)
        except (NotFound, APIError):
            return ""
        return raw.decode("utf-8", errors="replace")

    def remove(self, env_id: str) -> list[str]:
        removed: list[str] = []
        selector = [f"{ENV_LABEL}={env_id}"]
        # A container being created when a signal arrived can appear a moment later; look twice.
        for attempt in range(2):
            for container in self.engine.containers(selector):
                try:
                    self.engine.request(
                        "DELETE", f"/containers/{container['Id']}", {"force": True, "v": True}
                    )
                    removed.append(f"container {_name(container)}")
                except EngineError as exc:
                    if not exc.not_found and "already in progress" not in exc.message:
                        raise
            for network in self.engine.networks(selector):
                try:
                    self.engine.request("DELETE", f"/networks/{network['Id']}")
                    removed.append(f"network {network['Name']}")
                except EngineError as exc:
                    if attempt and not exc.not_found:
                        raise InfrastructureError(
                            f"cannot remove network {network['Name']}: {exc.message}"
                        ) from None
            if attempt == 0 and not removed:
                break
            if attempt == 0:
                time.sleep(0.05)
        return removed

    def environments(self) -> list[FoundEnvironment]:
        found: dict[str, FoundEnvironment] = {}
        selector = [MANAGED_LABEL]
        for container in self.engine.containers(selector):
            labels = dict(container.get("Labels") or {})
            env_id = labels.get(ENV_LABEL, "")
            if labels.get(ROLE_LABEL) == "suite" and env_id in found:
                continue  # a suite container belongs to its environment's row
            found[env_id] = FoundEnvironment(
                env_id=env_id,
                labels=labels,
                status=str(container.get("State", "unknown")),
                resources=(f"container {_name(container)}",),
            )
        for network in self.engine.networks(selector):
            labels = dict(network.get("Labels") or {})
            env_id = labels.get(ENV_LABEL, "")
            resource = f"network {network['Name']}"
            if env_id in found:
                entry = found[env_id]
                found[env_id] = FoundEnvironment(
                    env_id, entry.labels, entry.status, (*entry.resources, resource)
                )
            else:
                found[env_id] = FoundEnvironment(env_id, labels, "network only", (resource,))
        return sorted(found.values(), key=lambda env: env.env_id)

    def exec(
        self, env_id: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ExecResult:
        container = self._container(env_id)
        port = (container.labels or {}).get(PORT_LABEL) or str(SERVER_PORT)
        environment = {"PGHOST": SOCKET_DIR, "PGPORT": port, **(env or {})}
        code, output = container.exec_run(
            list(argv), user=SERVER_USER, environment=environment, demux=False
        )
        text = (output or b"").decode("utf-8", errors="replace")
        return ExecResult(exit_code=int(code), output=text)

    def copy_in(self, env_id: str, source: Path) -> str:
        container = self._container(env_id)
        self._counter += 1
        folder = f"{INBOX}/{self._counter}"
        with tempfile.TemporaryFile() as archive:
            with tarfile.open(fileobj=archive, mode="w") as tar:
                for directory in (INBOX.removeprefix("/"), folder.removeprefix("/")):
                    tar.addfile(_owned_dir(directory))
                tar.add(
                    source,
                    arcname=f"{folder.removeprefix('/')}/{source.name}",
                    filter=_owned_by_server,
                )
            archive.seek(0)
            container.put_archive("/", archive)
        # The archive says uid 999, the postgres of the official Debian-based images; where
        # the image's postgres is another (Alpine's is 70), only a chown lets it read them.
        code, output = container.exec_run(["chown", "-R", f"{SERVER_USER}:", INBOX], user="root")
        if code != 0:
            detail = (output or b"").decode("utf-8", errors="replace").strip()
            raise InfrastructureError(f"cannot hand {source.name} to the server: {detail}")
        return f"{folder}/{source.name}"

    def copy_out(self, env_id: str, path: str, destination: Path) -> None:
        container = self._container(env_id)
        stream, _ = container.get_archive(path)
        with tempfile.TemporaryFile() as archive:
            for chunk in stream:
                archive.write(chunk)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                member = tar.next()
                source = tar.extractfile(member) if member else None
                if source is None:
                    raise InfrastructureError(f"{path} in the container is not a file")
                with destination.open("wb") as out:
                    shutil.copyfileobj(source, out)

    def run_suite_container(
        self,
        env_id: str,
        *,
        image: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        mounts: Mapping[Path, str],
        workdir: str,
        timeout: float | None,
        user: str | None = None,
    ) -> int:
        """Run the suite in a container on the environment's network; return its exit code.

        The container carries the environment's labels, so teardown removes it too.
        """
        import threading

        from docker.errors import APIError
        from docker.types import Mount

        from provisioner import signals

        self.ensure_image(image)
        database = self._container(env_id)
        try:
            container = self.client.containers.create(
                image,
                command=list(argv),
                environment=dict(env),
                labels={**database.labels, ROLE_LABEL: "suite"},
                network=self._environment_network(env_id, NETWORK_ALIAS),
                working_dir=workdir,
                user=user,
                mounts=[
                    Mount(target, str(source), type="bind") for source, target in mounts.items()
                ],
                detach=True,
            )
        except APIError as exc:
            # A mount the engine may not read (a rootless engine and another user's folder)...
            raise InfrastructureError(
                f"the engine would not create the suite's container from {image}: "
                f"{exc.explanation or exc}",
                hint="the engine must be able to read the suite's folder and envctl's state "
                "folder (a rootless engine runs as its user)",
            ) from None
        try:
            container.start()
            streamer = threading.Thread(target=_stream_logs, args=(container,), daemon=True)
            streamer.start()
            deadline = None if timeout is None else time.monotonic() + timeout
            state = signals.current()
            while True:
                container.reload()
                if container.status == "exited":
                    streamer.join(timeout=5)
                    return int(container.attrs["State"]["ExitCode"])
                if state.pending is not None:
                    container.kill()
                    state.checkpoint()
                if deadline is not None and time.monotonic() > deadline:
                    container.kill()
                    from provisioner.errors import SuiteTimeoutError

                    raise SuiteTimeoutError(
                        f"the suite ran longer than test.timeout ({timeout:g}s) and was stopped",
                        hint="raise test.timeout, or look for a test that hangs",
                    )
                time.sleep(0.1)
        finally:
            container.remove(force=True, v=True)

    def _container(self, env_id: str) -> Any:
        """The SDK's model of the environment's server container."""
        from docker.errors import NotFound

        try:
            return self.client.containers.get(container_name(env_id))
        except NotFound:
            raise container_gone(env_id) from None


def _let_go(reservation: socket.socket | None) -> None:
    """Close the socket that held a server's port, if one did."""
    if reservation is not None:
        reservation.close()


def _name(container: dict[str, Any]) -> str:
    names = container.get("Names") or [container.get("Id", "?")[:12]]
    return str(names[0]).lstrip("/")


def _stream_logs(container: Any) -> None:

    try:
        for chunk in container.logs(stream=True, follow=True):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    except Exception:  # the container is being removed: its output ends here
        return


def _owned_dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o700
    info.uid = info.gid = SERVER_UID
    info.mtime = int(time.time())
    return info


def _owned_by_server(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = SERVER_UID
    info.uname = info.gname = ""
    return info


@functools.cache
def _boot_script() -> str:
    return (Path(__file__).parent / "docker_boot.sh").read_text()


def _config_archive(spec: ServerSpec) -> bytes:
    # Owned by the server's user, so that Postgres accepts its private key (0600).
    buffer = io.BytesIO()
    folder = FILES_INBOX.removeprefix("/etc/")
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(folder)
        info.type = tarfile.DIRTYPE
        info.mode = 0o700
        info.uid = info.gid = SERVER_UID
        info.mtime = int(time.time())
        archive.addfile(info)
        for item in spec.files:
            info = tarfile.TarInfo(f"{folder}/{item.name}")
            info.size = len(item.content)
            info.mode = item.mode
            info.uid = info.gid = SERVER_UID
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(item.content))
    return buffer.getvalue()
