"""The Docker runtime: one container and one network per environment, found again by label."""

from __future__ import annotations

import dataclasses
import functools
import io
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from provisioner.errors import (
    AlreadyRunningError,
    DockerUnavailableError,
    InfrastructureError,
    PortInUseError,
    ProfileError,
)
from provisioner.runtime import (
    ENV_LABEL,
    LABEL_PREFIX,
    MANAGED_LABEL,
    ExecResult,
    FoundEnvironment,
    ServerSpec,
    StartedServer,
)

F = TypeVar("F", bound=Callable[..., Any])
CONFIG_DIR = "/etc/envctl"
INBOX = "/tmp/envctl"  # where copy_in puts seed files
SOCKET_DIR = "/var/run/postgresql"
SERVER_USER = "postgres"
SERVER_UID = 999  # the official image's postgres user, which our test images copy
PING_TIMEOUT = 3.0


def docker_client(timeout: float = PING_TIMEOUT) -> Any:
    """A Docker client that has answered a ping, or DockerUnavailableError."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=max(int(timeout), 1))
        client.ping()
    except (DockerException, OSError) as exc:
        import os
        import re

        where = os.environ.get("DOCKER_HOST") or "the default socket"
        detail = re.search(r"\[Errno -?\d+\] [^)\"'\]]+", str(exc))
        raise DockerUnavailableError(
            f"no Docker engine answers at {where} ({detail[0] if detail else _first_line(exc)})",
            hint="start Docker (e.g. `sudo systemctl start docker`), check DOCKER_HOST, "
            "or use `runtime: native`",
        ) from None
    client.api.timeout = 120
    return client


def _engine_errors(method: F) -> F:
    """Turn a lost connection to the engine into one clear DockerUnavailableError."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import requests
        from docker.errors import APIError, DockerException

        try:
            return method(*args, **kwargs)
        except APIError:
            raise
        except (requests.exceptions.RequestException, DockerException) as exc:
            raise DockerUnavailableError(
                f"the Docker engine stopped answering ({_first_line(exc)})",
                hint="start Docker again, then `envctl gc` removes whatever was left behind",
            ) from None

    return wrapper  # type: ignore[return-value]


class _GuardedCalls(type):
    """Wraps every public method of the runtime with _engine_errors."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
        for key, value in list(namespace.items()):
            if callable(value) and not key.startswith("__"):
                namespace[key] = _engine_errors(value)
        return super().__new__(mcs, name, bases, namespace)


class DockerRuntime(metaclass=_GuardedCalls):
    """Runs each environment's server in a container of the profile's image."""

    name = "docker"

    def __init__(self, client: Any | None = None) -> None:
        self.client = client if client is not None else docker_client()
        self._counter = 0

    def config_dir(self, env_id: str) -> str:
        return CONFIG_DIR

    def start(self, spec: ServerSpec) -> StartedServer:
        from docker.errors import APIError

        if spec.from_cache:
            spec = dataclasses.replace(spec, image=spec.from_cache)  # just looked up: it is here
        else:
            self.ensure_image(spec.image)
        if spec.port is not None:
            self._check_port_free(spec.bind_host, spec.port)
        name = container_name(spec.env_id)
        try:
            # On Docker's default bridge: a network of its own costs a tenth of a second, so
            # it is made only when a suite container has to join (see _environment_network).
            container = self._create_container(spec, name)
            if spec.files:
                container.put_archive("/etc", _config_archive(spec))
            container.start()
            container.reload()
            port = int(container.ports["5432/tcp"][0]["HostPort"])
        except APIError as exc:
            self.remove(spec.env_id)
            message = _first_line(exc)
            if exc.status_code == 409:
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
            self.remove(spec.env_id)
            raise
        return StartedServer(port=port, details={"container": container.id[:12]})

    def _create_container(self, spec: ServerSpec, name: str) -> Any:
        # Settings go last, so that the profile's own listen_addresses would win.
        command = ["-c", "listen_addresses=*"]
        for key, value in spec.settings.items():
            command += ["-c", f"{key}={value}"]
        initdb_args = [f"--locale={spec.locale}", f"--encoding={spec.encoding}"]
        if spec.disposable:
            initdb_args.append("--no-sync")  # a fifth of a second, for data nobody keeps
        environment = {
            "POSTGRES_USER": spec.user,
            "POSTGRES_PASSWORD": spec.password,
            "POSTGRES_DB": spec.database,
            "POSTGRES_INITDB_ARGS": " ".join([*initdb_args, *spec.initdb_args]),
        }
        if spec.pgdata:
            environment["PGDATA"] = spec.pgdata
        return self.client.containers.create(
            spec.image,
            entrypoint=["bash", "-c", _boot_script(), "envctl-boot"],
            command=command,
            name=name,
            environment=environment,
            labels=spec.labels,
            ports={"5432/tcp": (spec.bind_host, spec.port)},
            detach=True,
            shm_size="256m",
        )

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
            raise InfrastructureError(f"cannot create network {name}: {_first_line(exc)}") from None
        network.connect(database, aliases=[alias])
        return name

    def ensure_image(self, image: str) -> Any:
        """The image `image`, pulled first if it is not here."""
        from docker.errors import APIError, ImageNotFound

        try:
            return self.client.images.get(image)
        except ImageNotFound:
            pass
        try:
            return self.client.images.pull(image)
        except APIError as exc:
            raise ProfileError(
                f"image '{image}' is not present and cannot be pulled ({_first_line(exc)})",
                hint="check postgres.version / postgres.image, or point ENVCTL_POSTGRES_IMAGE "
                "at a registry you can reach (e.g. mirror.example/postgres:{major})",
            ) from None

    def _check_port_free(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
                return
            except OSError:
                pass
        holder = self._container_publishing(port)
        who = f"container '{holder}'" if holder else "another process"
        raise PortInUseError(
            f"port {port} on {host} is already in use by {who}",
            hint="stop it, choose another postgres.port, or use `port: auto`",
        )

    def _container_publishing(self, port: int) -> str | None:
        for container in self._list_containers(None):
            for binding in container.get("Ports") or []:
                if binding.get("PublicPort") == port:
                    return _name(container)
        return None

    def _list_containers(self, filters: dict[str, str] | None) -> list[dict[str, Any]]:
        # One API call that returns labels, state and ports: unlike containers.list(), it does
        # not inspect each container, so a container removed meanwhile cannot make it fail.
        result: list[dict[str, Any]] = self.client.api.containers(all=True, filters=filters)
        return result

    def failure(self, env_id: str) -> str | None:
        from docker.errors import NotFound

        try:
            container = self.client.containers.get(container_name(env_id))
        except NotFound:
            return "the container is gone"
        if container.status in ("running", "created"):
            return None
        code = container.attrs.get("State", {}).get("ExitCode")
        return f"container {container.status}, exit code {code}"

    def log_tail(self, env_id: str, lines: int = 40) -> str:
        from docker.errors import APIError, NotFound

        try:
            container = self.client.containers.get(container_name(env_id))
            raw: bytes = container.logs(tail=lines)
        except (NotFound, APIError):
            return ""
        return raw.decode("utf-8", errors="replace")

    def remove(self, env_id: str) -> list[str]:
        from docker.errors import APIError, NotFound

        removed: list[str] = []
        selector = {"label": f"{ENV_LABEL}={env_id}"}
        # A container being created when a signal arrived can appear a moment later; look twice.
        for attempt in range(2):
            for container in self._list_containers(selector):
                try:
                    self.client.api.remove_container(container["Id"], force=True, v=True)
                    removed.append(f"container {_name(container)}")
                except NotFound:
                    pass
                except APIError as exc:
                    if "already in progress" not in str(exc):
                        raise
            for network in self.client.networks.list(filters=selector):
                try:
                    network.remove()
                    removed.append(f"network {network.name}")
                except NotFound:
                    pass
                except APIError as exc:
                    if attempt:
                        raise InfrastructureError(
                            f"cannot remove network {network.name}: {_first_line(exc)}"
                        ) from None
            if attempt == 0 and not removed:
                break
            if attempt == 0:
                time.sleep(0.05)
        return removed

    def environments(self) -> list[FoundEnvironment]:
        found: dict[str, FoundEnvironment] = {}
        selector = {"label": MANAGED_LABEL}
        for container in self._list_containers(selector):
            labels = dict(container.get("Labels") or {})
            env_id = labels.get(ENV_LABEL, "")
            if labels.get(f"{LABEL_PREFIX}role") == "suite" and env_id in found:
                continue  # a suite container belongs to its environment's row
            found[env_id] = FoundEnvironment(
                env_id=env_id,
                labels=labels,
                status=str(container.get("State", "unknown")),
                resources=(f"container {_name(container)}",),
            )
        for network in self.client.networks.list(filters=selector):
            env_id = network.attrs.get("Labels", {}).get(ENV_LABEL, "")
            if env_id in found:
                entry = found[env_id]
                found[env_id] = FoundEnvironment(
                    env_id,
                    entry.labels,
                    entry.status,
                    (*entry.resources, f"network {network.name}"),
                )
            else:
                found[env_id] = FoundEnvironment(
                    env_id,
                    dict(network.attrs.get("Labels", {})),
                    "network only",
                    (f"network {network.name}",),
                )
        return sorted(found.values(), key=lambda env: env.env_id)

    def exec(
        self, env_id: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ExecResult:
        container = self._container(env_id)
        environment = {"PGHOST": SOCKET_DIR, "PGPORT": "5432", **(env or {})}
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
        alias: str,
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

        from docker.types import Mount

        from provisioner import signals

        self.ensure_image(image)
        database = self._container(env_id)
        container = self.client.containers.create(
            image,
            command=list(argv),
            environment=dict(env),
            labels={**database.labels, f"{LABEL_PREFIX}role": "suite"},
            network=self._environment_network(env_id, alias),
            working_dir=workdir,
            user=user,
            mounts=[Mount(target, str(source), type="bind") for source, target in mounts.items()],
            detach=True,
        )
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

    def cache_identity(self, image: str, major: int, bin_dir: Path | None) -> str | None:
        return str(self.ensure_image(image).id)

    def cached_entry(self, key: str) -> str | None:
        from docker.errors import ImageNotFound

        from provisioner.cache import CACHE_LABEL, image_tag

        try:
            found = self.client.images.get(image_tag(key))
        except ImageNotFound:
            return None
        # The tag holds a prefix of the key: serve it only if the whole key matches.
        if (found.labels or {}).get(CACHE_LABEL) != key:
            return None
        return image_tag(key)

    def store_cache(self, env_id: str, key: str, base_image: str, labels: dict[str, str]) -> None:
        from provisioner.cache import CACHE_LABEL, CACHE_REPOSITORY, image_tag

        base = self.client.images.get(base_image).attrs.get("Config") or {}
        # The entry gets the base image's own configuration back: none of this container's
        # environment (its password) or labels (its owner) may travel with the data.
        config = {
            "Env": base.get("Env") or [],
            "Cmd": base.get("Cmd") or ["postgres"],
            "Entrypoint": base.get("Entrypoint"),
            "Labels": {**(base.get("Labels") or {}), **labels, CACHE_LABEL: key},
        }
        self._container(env_id).commit(
            repository=CACHE_REPOSITORY, tag=image_tag(key).split(":", 1)[1], conf=config
        )

    def cache_entries(self) -> list[dict[str, Any]]:
        """Every cache image, tagged or left dangling by a concurrent build of the same key."""
        from provisioner.cache import CACHE_LABEL

        entries = []
        for image in self.client.images.list(filters={"label": CACHE_LABEL}):
            entries.append(
                {
                    "id": image.id,
                    "tags": list(image.tags),
                    "labels": dict(image.labels or {}),
                    "size": int(image.attrs.get("Size", 0)),
                    "created": image.attrs.get("Created", ""),
                }
            )
        return entries

    def remove_cache_entry(self, entry_id: str) -> None:
        """Remove a cache image (not while a container uses it)."""
        self.client.images.remove(entry_id, force=False, noprune=False)

    def _container(self, env_id: str) -> Any:
        from docker.errors import NotFound

        try:
            return self.client.containers.get(container_name(env_id))
        except NotFound:
            raise InfrastructureError(
                f"the container of environment {env_id} is gone",
                hint="start it again with `envctl up`",
            ) from None


def _name(container: dict[str, Any]) -> str:
    names = container.get("Names") or [container.get("Id", "?")[:12]]
    return str(names[0]).lstrip("/")


def _stream_logs(container: Any) -> None:
    import sys

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


def container_name(env_id: str) -> str:
    """The container (and network) name of an environment."""
    return f"envctl-{env_id}"


def _config_archive(spec: ServerSpec) -> bytes:
    # Owned by the server's user, so that Postgres accepts its private key (0600).
    buffer = io.BytesIO()
    folder = CONFIG_DIR.removeprefix("/etc/")
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


def _first_line(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
