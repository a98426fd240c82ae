"""envctl's state folder: one private folder per environment with its record and backups.

Docker labels say which containers are envctl's; the state folder keeps what labels cannot
hold safely (the password, the env-file backup) and what a native server needs (its data).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provisioner.connection import Connection
from provisioner.envfile import write_atomic
from provisioner.errors import UsageError

STATE_DIR_VARIABLE = "ENVCTL_STATE_DIR"
# What Profile.env_id makes: a profile name (see profile._NAME), '-', 8 hex digits. An id names
# a folder that envctl removes, so nothing else (no '/', no '..') may pass for one.
ENV_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}-[0-9a-f]{8}$")


def is_env_id(text: str) -> bool:
    """Whether `text` has the shape of an environment id envctl makes."""
    return ENV_ID.fullmatch(text) is not None


def checked_env_id(env_id: str) -> str:
    """`env_id` if it is one envctl could have made; UsageError otherwise."""
    if not is_env_id(env_id):
        raise UsageError(
            f"'{env_id}' is not an environment id",
            hint="name a profile (.yaml), a backup started with `envctl repro`, "
            "or an id from `envctl status`",
        )
    return env_id


def _env_folder(env_id: str) -> Path:
    return state_root() / "envs" / checked_env_id(env_id)


def state_root() -> Path:
    """ENVCTL_STATE_DIR, else $XDG_STATE_HOME/envctl, else ~/.local/state/envctl."""
    explicit = os.environ.get(STATE_DIR_VARIABLE)
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base).expanduser().resolve() / "envctl"


def env_state_dir(env_id: str) -> Path:
    """The private (0700) folder of one environment; created on first use."""
    folder = _env_folder(env_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def env_state_file(env_id: str, name: str) -> Path:
    """A file in the environment's state folder; unlike env_state_dir, creates nothing."""
    return _env_folder(env_id) / name


@dataclass(frozen=True)
class EnvironmentRecord:
    """What envctl must remember about a running environment between commands."""

    env_id: str
    name: str
    profile: str | None
    runtime: str
    mode: str  # "up" (kept until `down`) or "run" (owned by a live envctl process)
    owner_pid: int
    created: float
    connection: dict[str, Any]
    env_file: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    # The owner's start time (processes.start_time): a reused pid is not the owner.
    owner_start: int | None = None
    # True until `up` has finished: until then even an "up" environment is its owner's.
    # A record without it (an older envctl's) is taken as finished, as that envctl took it.
    starting: bool = False

    def to_connection(self) -> Connection:
        """The stored connection as a value object."""
        data = dict(self.connection)
        for key in ("sslrootcert", "sslcert", "sslkey"):
            if data.get(key):
                data[key] = Path(data[key])
        return Connection(**data)


def connection_dict(connection: Connection) -> dict[str, Any]:
    """A Connection as JSON-friendly data."""
    data = asdict(connection)
    for key in ("sslrootcert", "sslcert", "sslkey"):
        if data[key] is not None:
            data[key] = str(data[key])
    return data


def save_record(record: EnvironmentRecord) -> None:
    """Write the record (0600: it holds the password)."""
    path = env_state_dir(record.env_id) / "state.json"
    write_atomic(path, json.dumps(asdict(record), indent=2).encode())


def load_record(env_id: str) -> EnvironmentRecord | None:
    """The record of `env_id`, or None when there is none (or it is unreadable)."""
    path = _env_folder(env_id) / "state.json"
    try:
        return EnvironmentRecord(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def all_env_ids() -> list[str]:
    """Every environment that has a state folder."""
    folder = state_root() / "envs"
    if not folder.is_dir():
        return []
    return sorted(
        entry.name
        for entry in folder.iterdir()
        if is_env_id(entry.name) and entry.is_dir() and not entry.is_symlink()
    )


def forget(env_id: str) -> None:
    """Remove the environment's state folder (never what a symlink in its place points to)."""
    folder = _env_folder(env_id)
    if folder.is_symlink():
        folder.unlink()
        return
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(folder)
