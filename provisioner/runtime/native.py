"""The native runtime: Postgres from local or pip-installed binaries, one private folder each.

Each environment gets `<tmp>/envctl-native-<uid>/<env_id>/` (0700) holding its data folder,
config files, socket folder, inbox and server log. The server runs detached, in its own
session, so that it outlives `envctl up`; what later commands need to find it again (folder,
pid, port, install) is kept in `native.json` in envctl's state folder for the environment.

Postgres refuses to run as root, so when envctl is root every server process and client tool
runs as the unprivileged system user `envctl-postgres`, which owns the private folder. That is
why the folder is under the temporary folder and not in the state folder (often under /root).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from provisioner import signals
from provisioner.cache import CACHE_LABEL
from provisioner.connection import UNLOGGED_SESSION
from provisioner.envfile import write_atomic
from provisioner.errors import (
    AlreadyRunningError,
    InfrastructureError,
    PortInUseError,
)
from provisioner.ports import free_port, port_free
from provisioner.processes import process_alive, start_time
from provisioner.runtime import (
    ENV_LABEL,
    LABEL_PREFIX,
    MANAGED_LABEL,
    ExecResult,
    FoundEnvironment,
    ServerFile,
    ServerSpec,
    StartedServer,
)
from provisioner.runtime.binaries import BIN_VARIABLE, Install, find_install
from provisioner.runtime.engines import Placement
from provisioner.state import (
    all_env_ids,
    env_state_dir,
    env_state_file,
    load_record,
)

log = logging.getLogger(__name__)

SERVER_USER = "envctl-postgres"
STATE_FILE = "native.json"
STOP_TIMEOUT = 10.0  # fast shutdown, then SIGKILL
BIND_TIMEOUT = 30.0  # how long start() waits for the server to hold its port
TOOL_TIMEOUT = 300.0  # initdb, single-user mode
PORT_ATTEMPTS = 5
# A Unix socket path has 108 bytes on Linux and 104 on macOS; leave a margin.
SOCKET_PATH_LIMIT = 100
SOCKET_SUFFIX = "/s/.s.PGSQL.65535"
HBA = (
    "# written by envctl: local socket for envctl's tools, passwords over TCP\n"
    "local all all trust\n"
    "local replication all trust\n"
    "host all all all scram-sha-256\n"
    "host replication all all scram-sha-256\n"
)
BUILTIN_DATABASES = ("postgres", "template0", "template1")

# Servers this process started, by environment: their exit status is known only to us.
_started: dict[str, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ServerUser:
    """The unprivileged user servers and tools run as when envctl is root."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Layout:
    """The paths inside one environment's private folder."""

    folder: Path

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def config(self) -> Path:
        return self.folder / "config"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "s"

    @property
    def inbox(self) -> Path:
        return self.folder / "inbox"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def password_file(self) -> Path:
        return self.folder / "initdb-password"


@dataclass(frozen=True)
class ServerState:
    """What later envctl processes need to find an environment's server again."""

    env_id: str
    folder: str
    bin_dir: str
    version: str
    source: str
    bind_host: str
    superuser: str
    port: int | None = None
    pid: int | None = None

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.folder))


class NativeRuntime:
    """Runs each environment's server from PostgreSQL binaries installed on this machine."""

    name = "native"

    def config_dir(self, env_id: str) -> str:
        return str(Layout(private_folder(env_id)).config)

    def placement(self, bind_host: str) -> Placement:
        """On this machine: the profile's address, reached on loopback when it is a wildcard."""
        return Placement(bind_host, {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_host, bind_host))

    def start(
        self, spec: ServerSpec, meanwhile: Callable[[], object] | None = None
    ) -> StartedServer:
        install = find_install(spec.major, spec.bin_dir)
        _check_ssl(spec, install)
        if spec.port is not None:
            _check_port_free(spec.bind_host, spec.port)
        user = server_user()
        if user is not None:
            _check_reachable(user, install)
        layout = Layout(private_folder(spec.env_id))
        _check_socket_path(layout)
        _claim(layout, spec.env_id, user)
        state = ServerState(
            env_id=spec.env_id,
            folder=str(layout.folder),
            bin_dir=str(install.bin_dir),
            version=install.version,
            source=install.source,
            bind_host=spec.bind_host,
            superuser=spec.user,
        )
        try:
            _save(state)
            _write_files(layout.config, spec.files, user)
            if spec.from_cache:
                _copy_tree(Path(spec.from_cache) / "data", layout.data)
            else:
                _initdb(spec, install, layout, user)
            state = _launch(spec, install, layout, user, state, meanwhile)
            if spec.from_cache:
                assert state.port is not None
                _adopt_password(spec, layout, state.port)
        except BaseException:
            # Whatever stopped us (an error, a signal), nothing of this environment stays.
            self.remove(spec.env_id)
            raise
        assert state.port is not None and state.pid is not None
        return StartedServer(
            port=state.port,
            details={
                "native_folder": str(layout.folder),
                "data_dir": str(layout.data),
                "server_pid": state.pid,
                "bin_dir": str(install.bin_dir),
                "postgres_version": install.version,
                "install": install.source,
            },
        )

    def failure(self, env_id: str) -> str | None:
        state = _load(env_id)
        if state is None or state.pid is None:
            return "no native server was started for this environment"
        child = _started.get(env_id)
        if child is not None and child.pid == state.pid:
            code = child.poll()
            return None if code is None else f"the server exited with {_exit_status(code)}"
        if _is_server(state.pid, state.layout.data):
            return None
        return f"the server (pid {state.pid}) is no longer running"

    def log_tail(self, env_id: str, lines: int = 40) -> str:
        state = _load(env_id)
        layout = state.layout if state else Layout(private_folder(env_id))
        return _tail(layout.log, lines)

    def remove(self, env_id: str) -> list[str]:
        removed: list[str] = []
        state = _load(env_id)
        layout = state.layout if state else Layout(private_folder(env_id))
        pids = {pid for pid in (state.pid if state else None, _postmaster_pid(layout.data)) if pid}
        child = _started.get(env_id)
        if child is not None:
            pids.add(child.pid)
        for pid in sorted(pids):
            if _stop(env_id, pid, layout.data):
                removed.append(f"server pid {pid}")
        _started.pop(env_id, None)
        if layout.folder.exists() and _is_private(layout.folder):
            failures = _remove_folder(layout.folder)
            if failures:
                # The record stays (the caller keeps it on an error): `gc` tries again later.
                raise InfrastructureError(
                    f"could not remove {layout.folder}: {len(failures)} entr"
                    f"{'y is' if len(failures) == 1 else 'ies are'} left, first {failures[0]}",
                    hint="remove what is left by hand (is something mounted or immutable "
                    "there?), then run `envctl gc`",
                )
            removed.append(f"folder {layout.folder}")
        env_state_file(env_id, STATE_FILE).unlink(missing_ok=True)
        return removed

    def environments(self) -> list[FoundEnvironment]:
        found: list[FoundEnvironment] = []
        for env_id in all_env_ids():
            record = load_record(env_id)
            if record is None or record.runtime != self.name:
                continue
            state = _load(env_id)
            if state is None or state.pid is None:
                status = "starting"
            else:
                status = "running" if self.failure(env_id) is None else "exited"
            labels = {
                MANAGED_LABEL: "true",
                ENV_LABEL: env_id,
                f"{LABEL_PREFIX}name": record.name,
                f"{LABEL_PREFIX}profile": record.profile or "",
                f"{LABEL_PREFIX}mode": record.mode,
                f"{LABEL_PREFIX}owner-pid": str(record.owner_pid),
                f"{LABEL_PREFIX}runtime": self.name,
                f"{LABEL_PREFIX}state-dir": str(env_state_file(env_id, "state.json").parent),
            }
            resources: tuple[str, ...] = ()
            if state is not None:
                resources = (f"folder {state.folder}",)
                if state.pid is not None:
                    resources = (f"server pid {state.pid}", *resources)
            found.append(FoundEnvironment(env_id, labels, status, resources))
        return found

    def exec(
        self, env_id: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ExecResult:
        state = _running(env_id)
        program = Path(argv[0]) if os.sep in argv[0] else Path(state.bin_dir) / argv[0]
        if not os.access(program, os.X_OK):
            raise InfrastructureError(
                f"{argv[0]} is not a program of PostgreSQL {state.version} in {state.bin_dir}"
            )
        layout = state.layout
        variables = {
            **_child_environment(layout, server_user()),
            "PGHOST": str(layout.socket_dir),
            "PGPORT": str(state.port),
            # The OS user has no role of its own; the profile's user is the superuser, as
            # `postgres` is in the Docker image.
            "PGUSER": state.superuser,
            **(env or {}),
        }
        result = subprocess.run(
            [str(program), *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=layout.folder,
            env=variables,
            check=False,
            **_as_server(server_user()),
        )
        return ExecResult(result.returncode, result.stdout.decode("utf-8", errors="replace"))

    def copy_in(self, env_id: str, source: Path) -> str:
        layout = _running(env_id).layout
        user = server_user()
        layout.inbox.mkdir(mode=0o700, exist_ok=True)
        _own(layout.inbox, user)
        folder = Path(tempfile.mkdtemp(dir=layout.inbox))
        target = folder / source.name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        # The server's user reads seeds and writes dumps here, whoever owned the originals.
        for path in (folder, *_tree(target)):
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) | (0o700 if path.is_dir() else 0o600))
            _own(path, user)
        return str(target)

    def copy_out(self, env_id: str, path: str, destination: Path) -> None:
        layout = _running(env_id).layout
        source = Path(path).resolve()
        # Files in the folder belong to the server's user: follow no link out of it.
        if not source.is_relative_to(layout.folder.resolve()):
            raise InfrastructureError(f"{path} is not inside environment {env_id}'s folder")
        if not source.is_file():
            raise InfrastructureError(f"{path} in environment {env_id} is not a file")
        shutil.copyfile(source, destination)

    # --- the cache: a copy of a stopped-in-time data folder per entry ---------------------

    def cache_identity(self, image: str, major: int, bin_dir: Path | None) -> str | None:
        install = find_install(major, bin_dir)
        return f"native {install.version} {install.bin_dir} ({install.source})"

    def cached_entry(self, key: str) -> str | None:
        entry = cache_folder() / key
        return str(entry) if (entry / "data" / "PG_VERSION").is_file() else None

    def store_cache(self, env_id: str, key: str, base_image: str, labels: dict[str, str]) -> None:
        """Copy the data folder while the server is frozen (SIGSTOP to its process group, as
        `docker commit` pauses a container): the copy is what a crash at that instant would
        leave, which the next start recovers from the last checkpoint in milliseconds."""
        state = _running(env_id)
        assert state.pid is not None
        root = cache_folder()
        if (root / key).exists():
            return  # built meanwhile by another envctl
        # Named after its builder: a copy left by a killed envctl is known as abandoned.
        builder = f"{os.getpid()}.{start_time(os.getpid()) or 0}"
        building = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-{builder}-", dir=root))
        try:
            os.killpg(state.pid, signal.SIGSTOP)
            try:
                _copy_tree(state.layout.data, building / "data")
            finally:
                os.killpg(state.pid, signal.SIGCONT)
            # The lock names a live server (this one): a server started from the copy would
            # refuse to share its data folder with it.
            (building / "data" / "postmaster.pid").unlink(missing_ok=True)
            info = {"key": key, "labels": labels, "created": time.time(), "version": state.version}
            (building / "entry.json").write_text(json.dumps(info))
            os.rename(building, root / key)  # whole or not at all; an existing one wins
        except OSError as exc:
            if not (root / key).exists():
                log.warning("could not keep the cluster in the cache: %s", exc)
        finally:
            shutil.rmtree(building, ignore_errors=True)

    def cache_entries(self) -> list[dict[str, Any]]:
        entries = []
        for entry in sorted(cache_folder().iterdir()):
            try:
                info = json.loads((entry / "entry.json").read_text())
            except (OSError, ValueError):
                if not _abandoned_build(entry):
                    continue  # a build in progress, or a removal
                info = {"created": entry.stat().st_mtime}  # untagged: any prune removes it
            size = sum(f.stat().st_size for f in _tree(entry / "data") if f.is_file())
            entries.append(
                {
                    "id": str(entry),
                    "tags": [] if entry.name.startswith(".") else [info.get("key", "")],
                    "labels": {CACHE_LABEL: info.get("key", ""), **info.get("labels", {})},
                    "size": size,
                    "created": time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(info.get("created", 0)))
                    ),
                }
            )
        return entries

    def remove_cache_entry(self, entry_id: str) -> None:
        entry = Path(entry_id)
        if entry.parent != cache_folder():
            raise InfrastructureError(f"{entry_id} is not a native cache entry")
        # Renamed first: a start never copies from half an entry.
        doomed = entry.with_name(f".removing-{entry.name}")
        os.rename(entry, doomed)
        shutil.rmtree(doomed)


_BUILDING = re.compile(r"^\.[0-9a-f]{16}-(\d+)\.(\d+)-")


def _abandoned_build(entry: Path) -> bool:
    """A partial copy of store_cache whose envctl is gone (killed during the copy)."""
    match = _BUILDING.match(entry.name)
    if match is None or entry.is_symlink() or not entry.is_dir():
        return False
    pid, started = int(match.group(1)), int(match.group(2))
    return not process_alive(pid, started or None)


def cache_folder() -> Path:
    """Where native cache entries live: ENVCTL_CACHE_DIR, else the user's cache folder."""
    base = os.environ.get("ENVCTL_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = str(Path(xdg) / "envctl" if xdg else Path.home() / ".cache" / "envctl")
    folder = Path(base) / "native"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def _copy_tree(source: Path, target: Path) -> None:
    """A copy that keeps owners and modes (`cp -a`; copy-on-write where the disk can)."""
    result = subprocess.run(
        ["cp", "-a", str(source), str(target)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise OSError(result.stderr.strip() or f"cp exited with {result.returncode}")


def _adopt_password(spec: ServerSpec, layout: Layout, port: int) -> None:
    """Give a cluster from the cache this environment's password, over the local socket
    (trusted there; over TCP nobody knows the password it was built with)."""
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + BIND_TIMEOUT
    statement = sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
        sql.Identifier(spec.user), sql.Literal(spec.password)
    )
    while True:
        signals.current().checkpoint()
        try:
            with psycopg.connect(
                host=str(layout.socket_dir),
                port=port,
                user=spec.user,
                dbname="postgres",
                autocommit=True,
                connect_timeout=2,
                options=UNLOGGED_SESSION,
            ) as conn:
                conn.execute(statement)
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"could not set the password of a cached cluster ({exc})",
                    hint="ENVCTL_CACHE=off starts without the cache; `envctl cache prune` "
                    "empties it",
                ) from None
            time.sleep(0.02)


# --- where things live ---------------------------------------------------------------------


def private_root() -> Path:
    """The folder that holds every native environment of this user."""
    return Path(tempfile.gettempdir()) / f"envctl-native-{os.getuid()}"


def private_folder(env_id: str) -> Path:
    """The private folder of `env_id` when started by this process (TMPDIR decides)."""
    # Short enough for the server's socket path; a long id keeps its start plus a digest.
    root = private_root()
    room = SOCKET_PATH_LIMIT - len(os.fsencode(root)) - 1 - len(SOCKET_SUFFIX)
    if len(env_id) <= room:
        return root / env_id
    digest = hashlib.sha256(env_id.encode()).hexdigest()[:10]
    keep = room - len(digest) - 1
    return root / (f"{env_id[:keep]}-{digest}" if keep > 0 else digest)


def _check_socket_path(layout: Layout) -> None:
    socket_path = f"{layout.socket_dir}/.s.PGSQL.65535"
    if len(os.fsencode(socket_path)) > SOCKET_PATH_LIMIT:
        raise InfrastructureError(
            f"the server's socket path {socket_path} would be too long for a Unix socket",
            hint="set TMPDIR to a shorter folder, e.g. TMPDIR=/tmp",
        )


def _ensure_root(user: ServerUser | None) -> Path:
    root = private_root()
    # Other users' servers need to pass through (0711), but not list what is in it.
    mode = 0o711 if user is not None else 0o700
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=mode)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise InfrastructureError(
            f"{root} is not a folder owned by this user",
            hint="remove it (someone else may have created it to intercept envctl's servers)",
        )
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(root, mode)
    return root


def _is_private(folder: Path) -> bool:
    return folder.parent.name.startswith("envctl-native-") and not folder.is_symlink()


def _claim(layout: Layout, env_id: str, user: ServerUser | None) -> None:
    """Create the environment's folder; a leftover without a live server is replaced."""
    _ensure_root(user)
    try:
        layout.folder.mkdir(mode=0o700)
    except FileExistsError:
        pid = _postmaster_pid(layout.data)
        if pid is not None and _is_server(pid, layout.data):
            raise AlreadyRunningError(
                f"a native server for environment '{env_id}' already runs "
                f"(pid {pid}, {layout.folder})",
                hint=f"remove it with `envctl down {env_id}`",
            ) from None
        log.info("removing the leftover folder %s", layout.folder)
        shutil.rmtree(layout.folder)
        layout.folder.mkdir(mode=0o700)
    os.chmod(layout.folder, 0o700)
    _own(layout.folder, user)


def _save(state: ServerState) -> None:
    write_atomic(env_state_dir(state.env_id) / STATE_FILE, json.dumps(asdict(state)).encode())


def _load(env_id: str) -> ServerState | None:
    try:
        return ServerState(**json.loads(env_state_file(env_id, STATE_FILE).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _running(env_id: str) -> ServerState:
    state = _load(env_id)
    if state is None or state.port is None:
        raise InfrastructureError(
            f"the native server of environment {env_id} is gone",
            hint="start it again with `envctl up`",
        )
    return state


# --- the server's user ---------------------------------------------------------------------


def server_user() -> ServerUser | None:
    """The user servers run as: `envctl-postgres` when envctl is root (created once), else
    None for envctl's own user."""
    if os.geteuid() != 0:
        return None
    import pwd  # POSIX, as the native runtime is: imported when it runs

    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        _create_server_user()
        entry = pwd.getpwnam(SERVER_USER)
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _create_server_user() -> None:
    import pwd

    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    shell = next(
        (path for path in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(path)),
        "/bin/false",
    )
    argv = [useradd, "--system", "--user-group", "--no-create-home", "--shell", shell]
    try:
        result = subprocess.run(
            [*argv, SERVER_USER], capture_output=True, text=True, timeout=60, check=False
        )
        problem = result.stderr.strip() if result.returncode != 0 else ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = str(exc)
    with contextlib.suppress(KeyError):
        pwd.getpwnam(SERVER_USER)  # another envctl may have created it meanwhile
        return
    raise InfrastructureError(
        f"cannot create the system user {SERVER_USER} that runs Postgres for root ({problem})",
        hint=f"Postgres refuses to run as root: create it (useradd --system --no-create-home "
        f"--shell /usr/sbin/nologin {SERVER_USER}) or run envctl as a normal user",
    )


def _as_server(user: ServerUser | None) -> dict[str, Any]:
    """subprocess arguments that run a program as the server's user, files private to it."""
    if user is None:
        return {"umask": 0o077}
    return {"user": user.uid, "group": user.gid, "extra_groups": [], "umask": 0o077}


def _own(path: Path, user: ServerUser | None) -> None:
    if user is not None:
        os.chown(path, user.uid, user.gid, follow_symlinks=False)


def _child_environment(layout: Layout, user: ServerUser | None) -> dict[str, str]:
    # The caller's PG* variables (PGHOST, PGDATA, PGPASSWORD...) must not steer our tools.
    variables = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    if user is not None:
        variables["HOME"] = str(layout.folder)  # root's home is not readable by the server
    return variables


def _check_reachable(user: ServerUser, install: Install) -> None:
    """The server's user must reach the binaries and the private folders (not so under /root)."""
    for path, fix in (
        (install.bin_dir, "install PostgreSQL where every user can read it"),
        (private_root(), "set TMPDIR to a folder every user can pass through, e.g. /tmp"),
    ):
        closed = _closed_ancestor(path, user)
        if closed is not None:
            raise InfrastructureError(
                f"the server's user {user.name} cannot reach {path}: "
                f"{closed} is closed to other users",
                hint=f"{fix}, chmod o+x {closed}, or run envctl as a normal user",
            )


def _closed_ancestor(path: Path, user: ServerUser) -> Path | None:
    for folder in reversed([path, *path.parents]):
        try:
            info = folder.stat()
        except FileNotFoundError:
            return None  # created later, by us, with the right modes
        if info.st_uid == user.uid:
            bits = stat.S_IXUSR
        elif info.st_gid == user.gid:
            bits = stat.S_IXGRP
        else:
            bits = stat.S_IXOTH
        if not info.st_mode & bits:
            return folder
    return None


# --- checks before anything is created -----------------------------------------------------


def _check_ssl(spec: ServerSpec, install: Install) -> None:
    if spec.settings.get("ssl") == "on" and not install.has_ssl:
        raise InfrastructureError(
            f"PostgreSQL {install.describe()} was built without SSL, "
            "but the profile's postgres.ssl needs it",
            hint=f"use a PostgreSQL {spec.major} built with OpenSSL (e.g. the distribution's "
            f"package, via postgres.bin_dir or {BIN_VARIABLE}), set postgres.ssl to disable, "
            "or use `runtime: docker`",
        )


def _check_port_free(host: str, port: int) -> None:
    if port_free(host, port):
        return
    raise _port_in_use(host, port)


def _port_in_use(host: str, port: int) -> PortInUseError:
    holder = next(
        (
            env_id
            for env_id in all_env_ids()
            if (state := _load(env_id)) is not None and state.port == port
        ),
        None,
    )
    who = f"envctl-{holder} (a native envctl server)" if holder else "another process"
    return PortInUseError(
        f"port {port} on {host} is already in use by {who}",
        hint="stop it, choose another postgres.port, or use `port: auto`",
    )


# --- creating the cluster ------------------------------------------------------------------


def _write_files(folder: Path, files: tuple[ServerFile, ...], user: ServerUser | None) -> None:
    folder.mkdir(mode=0o700)
    _own(folder, user)
    for item in files:
        if Path(item.name).name != item.name:
            raise InfrastructureError(f"server file name {item.name!r} is not a plain name")
        path = folder / item.name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, item.mode)
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), item.mode)
            handle.write(item.content)
        # Owned by the server's user, so that Postgres accepts its private key (0600).
        _own(path, user)


def _initdb(spec: ServerSpec, install: Install, layout: Layout, user: ServerUser | None) -> None:
    """Create the cluster with the profile's user, password and locale, then its database."""
    fast = spec.disposable  # a durable profile keeps initdb's fsync too
    password = layout.password_file
    descriptor = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(spec.password + "\n")
    _own(password, user)
    argv = [
        str(install.bin_dir / "initdb"),
        "-D",
        str(layout.data),
        f"--username={spec.user}",
        f"--pwfile={password}",
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        f"--locale={choose_locale(spec.locale, spec.encoding)}",
        f"--encoding={spec.encoding}",
        # As on Docker: a cache entry is copied whole on every warm start, and a 16 MB WAL
        # segment was a third of it.
        *(["--no-sync", "--wal-segsize=1"] if fast else []),
        *spec.initdb_args,
    ]
    try:
        _run_tool(argv, layout, user, "initdb")
    finally:
        password.unlink(missing_ok=True)
    hba = layout.data / "pg_hba.conf"
    hba.write_text(HBA)
    _own(hba, user)
    if spec.database not in BUILTIN_DATABASES:
        _create_database(spec, install, layout, user, fast)


def _create_database(
    spec: ServerSpec, install: Install, layout: Layout, user: ServerUser | None, fast: bool
) -> None:
    # Single-user mode needs no port, socket or password: the database exists before the
    # server first listens, as with the Docker image's POSTGRES_DB.
    name = spec.database.replace('"', '""')
    argv = [str(install.bin_dir / "postgres"), "--single", "-D", str(layout.data)]
    argv += ["-c", "exit_on_error=on", *(["-F"] if fast else []), "template1"]
    _run_tool(argv, layout, user, "creating the database", f'CREATE DATABASE "{name}"\n')


def _run_tool(
    argv: list[str], layout: Layout, user: ServerUser | None, what: str, stdin: str = ""
) -> None:
    signals.current().checkpoint()
    try:
        result = subprocess.run(
            argv,
            input=stdin.encode(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=layout.folder,
            env=_child_environment(layout, user),
            timeout=TOOL_TIMEOUT,
            check=False,
            **_as_server(user),
        )
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"{what} took longer than {TOOL_TIMEOUT:g}s") from None
    # The terminal's Ctrl-C reaches the tool too: report the interruption, not its failure.
    signals.current().checkpoint()
    if result.returncode != 0:
        output = result.stdout.decode("utf-8", errors="replace")
        raise InfrastructureError(
            f"{what} failed with {_exit_status(result.returncode)}:\n{_indent(output)}",
            hint="its output above names the cause",
        )


def choose_locale(wanted: str, encoding: str) -> str:
    """`wanted` when this machine has it, else C.UTF-8 (or C) with a warning."""
    installed = _installed_locales()
    if installed is None or _normal(wanted) in installed or wanted in ("C", "POSIX"):
        return wanted
    utf8 = _normal(f"x.{encoding}") == "x.utf8"
    fallback = "C.UTF-8" if utf8 and "c.utf8" in installed else "C"
    log.warning(
        "the locale %s is not installed on this machine; the native server uses %s instead "
        "(sorting may differ from Docker's; install the locale, e.g. with locale-gen, to match)",
        wanted,
        fallback,
    )
    return fallback


def _installed_locales() -> set[str] | None:
    try:
        result = subprocess.run(
            ["locale", "-a"], capture_output=True, text=True, timeout=15, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return {_normal(line) for line in result.stdout.split()}


def _normal(name: str) -> str:
    # en_US.UTF-8, en_US.utf8 and en_us.UTF8 are one locale.
    language, dot, codeset = name.partition(".")
    codeset, at, modifier = codeset.partition("@")
    codeset = codeset.lower().replace("-", "").replace("_", "")
    return f"{language.lower()}{dot}{codeset}{at}{modifier.lower()}"


# --- running the server --------------------------------------------------------------------


def _launch(
    spec: ServerSpec,
    install: Install,
    layout: Layout,
    user: ServerUser | None,
    state: ServerState,
    meanwhile: Callable[[], object] | None = None,
) -> ServerState:
    """Start the server detached; with `port: auto`, try another port if one was taken.

    `meanwhile` runs once, while the first server process starts."""
    attempts = 1 if spec.port is not None else PORT_ATTEMPTS
    for _ in range(attempts):
        port = spec.port if spec.port is not None else free_port(spec.bind_host)
        offset = layout.log.stat().st_size if layout.log.exists() else 0
        process = _spawn(spec, install, layout, user, port)
        state = replace(state, port=port, pid=process.pid)
        _save(state)
        if meanwhile is not None:
            meanwhile()
            meanwhile = None
        if _wait_until_bound(process, layout):
            return state
        # It exited: a port taken between our probe and its bind is worth another try;
        # any other failure is for readiness to report, with the log.
        taken = "Address already in use" in _read_from(layout.log, offset)
        if not (taken or not port_free(spec.bind_host, port)):
            return state
        process.wait()
        _started.pop(spec.env_id, None)
        if spec.port is not None:
            raise _port_in_use(spec.bind_host, port)
        log.info("port %d was taken before the server could bind it; trying another", port)
    raise InfrastructureError(
        f"no free port on {spec.bind_host} after {attempts} attempts",
        hint="set a fixed postgres.port",
    )


def _spawn(
    spec: ServerSpec, install: Install, layout: Layout, user: ServerUser | None, port: int
) -> subprocess.Popen[bytes]:
    layout.socket_dir.mkdir(mode=0o700, exist_ok=True)
    _own(layout.socket_dir, user)
    settings = {"cluster_name": f"envctl-{spec.env_id}"[:63], **spec.settings}
    # Ours last: the socket folder and address are what exec() and the port check rely on.
    settings["listen_addresses"] = spec.bind_host
    settings["unix_socket_directories"] = str(layout.socket_dir)
    argv = [str(install.bin_dir / "postgres"), "-D", str(layout.data), "-p", str(port)]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    log_file = os.open(layout.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        _own(layout.log, user)
        # Its own session: the terminal's Ctrl-C and envctl's exit do not reach it.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=layout.folder,
            env=_child_environment(layout, user),
            start_new_session=True,
            **_as_server(user),
        )
    finally:
        os.close(log_file)
    _started[spec.env_id] = process
    log.info("started postgres (pid %d) on port %d: %s", process.pid, port, layout.data)
    return process


def _wait_until_bound(process: subprocess.Popen[bytes], layout: Layout) -> bool:
    """True once the server holds its TCP port (or we stop watching); False if it exited."""
    deadline = time.monotonic() + BIND_TIMEOUT
    while time.monotonic() < deadline:
        signals.current().checkpoint()
        if process.poll() is not None:
            return False
        # postmaster.pid gains its 6th line (the first listen address) once the port is bound.
        lines = _read_lines(layout.data / "postmaster.pid")
        if len(lines) >= 6 and lines[5].strip():
            return True
        time.sleep(0.01)
    return True


def _stop(env_id: str, pid: int, data: Path) -> bool:
    """Fast shutdown (SIGINT), then SIGKILL to its process group; False if not our server."""
    child = _started.get(env_id)
    ours = child is not None and child.pid == pid
    if ours:
        assert child is not None
        if child.poll() is not None:
            return False
    elif not _is_server(pid, data):
        return False
    # A server frozen by an interrupted cache store (SIGSTOP) would not see the SIGINT.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGCONT)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    if not _wait_gone(pid, child if ours else None, STOP_TIMEOUT):
        log.warning("postgres (pid %d) ignored a fast shutdown; killing it", pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # its own session: the group is its backends
        _wait_gone(pid, child if ours else None, STOP_TIMEOUT)
    return True


def _wait_gone(pid: int, child: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None:
            if child.poll() is not None:
                return True
        elif not process_alive(pid):
            return True
        time.sleep(0.02)
    return False


def _is_server(pid: int, data: Path) -> bool:
    """Whether `pid` is a live postmaster of the data folder `data` (not a reused pid)."""
    if not process_alive(pid):
        return False
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            argv = proc.read_bytes().split(b"\0")
        except OSError:
            return False
        return (
            bool(argv)
            and os.path.basename(argv[0]) in (b"postgres", b"postmaster")
            and os.fsencode(data) in argv
        )
    # No /proc (macOS): the lock file the postmaster keeps names its pid.
    return _postmaster_pid(data) == pid


def _remove_folder(folder: Path) -> list[str]:
    """Remove `folder` as far as it goes; each path that stayed, with why."""
    failures: list[str] = []
    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=lambda _, path, exc: failures.append(_why(path, exc)))
    else:
        shutil.rmtree(folder, onerror=lambda _, path, info: failures.append(_why(path, info[1])))
    return failures


def _why(path: str, exc: BaseException) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{path} ({reason})"


def _postmaster_pid(data: Path) -> int | None:
    lines = _read_lines(data / "postmaster.pid")
    try:
        return int(lines[0]) if lines else None
    except ValueError:
        return None


# --- small file helpers --------------------------------------------------------------------


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            # Enough bytes for `lines` lines of a usual length, and at least 64 KiB.
            handle.seek(max(handle.tell() - max(64 * 1024, lines * 256), 0))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _tree(path: Path) -> list[Path]:
    if not path.is_dir() or path.is_symlink():
        return [path]
    return [path, *(item for item in sorted(path.rglob("*")) if not item.is_symlink())]


def _exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _indent(text: str, lines: int = 30) -> str:
    tail = text.rstrip().splitlines()[-lines:] or ["(no output)"]
    return "\n".join("  | " + line for line in tail)
