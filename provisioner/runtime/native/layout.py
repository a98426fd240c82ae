"""Where a native environment lives: its private folder, the paths inside, and the state file
that lets later envctl processes find its server again."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from provisioner.envfile import write_atomic
from provisioner.errors import InfrastructureError
from provisioner.runtime.binaries import Install
from provisioner.runtime.native.user import ServerUser
from provisioner.state import env_state_dir, env_state_file

STATE_FILE = "native.json"

# A Unix socket path has 108 bytes on Linux and 104 on macOS; leave a margin.
SOCKET_PATH_LIMIT = 100

SOCKET_SUFFIX = "/s/.s.PGSQL.65535"


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


def check_socket_path(layout: Layout) -> None:
    socket_path = f"{layout.socket_dir}/.s.PGSQL.65535"
    if len(os.fsencode(socket_path)) > SOCKET_PATH_LIMIT:
        raise InfrastructureError(
            f"the server's socket path {socket_path} would be too long for a Unix socket",
            hint="set TMPDIR to a shorter folder, e.g. TMPDIR=/tmp",
        )


def ensure_root(user: ServerUser | None) -> Path:
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


def is_private(folder: Path) -> bool:
    return folder.parent.name.startswith("envctl-native-") and not folder.is_symlink()


def save_state(state: ServerState) -> None:
    write_atomic(env_state_dir(state.env_id) / STATE_FILE, json.dumps(asdict(state)).encode())


def load_state(env_id: str) -> ServerState | None:
    try:
        return ServerState(**json.loads(env_state_file(env_id, STATE_FILE).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def running_state(env_id: str) -> ServerState:
    state = load_state(env_id)
    if state is None or state.port is None:
        raise InfrastructureError(
            f"the native server of environment {env_id} is gone",
            hint="start it again with `envctl up`",
        )
    return state


def check_reachable(user: ServerUser, install: Install) -> None:
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
