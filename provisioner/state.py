"""envctl's state folder: one private folder per environment with its record and backups.

Docker labels say which containers are envctl's; the state folder keeps what labels cannot
hold safely (the password, the env-file backup) and what a native server needs (its data).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provisioner.connection import Connection
from provisioner.envfile import write_atomic

STATE_DIR_VARIABLE = "ENVCTL_STATE_DIR"


def state_root() -> Path:
    """ENVCTL_STATE_DIR, else $XDG_STATE_HOME/envctl, else ~/.local/state/envctl."""
    explicit = os.environ.get(STATE_DIR_VARIABLE)
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base).expanduser().resolve() / "envctl"


def env_state_dir(env_id: str) -> Path:
    """The private (0700) folder of one environment; created on first use."""
    folder = state_root() / "envs" / env_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def env_state_file(env_id: str, name: str) -> Path:
    """A file in the environment's state folder; unlike env_state_dir, creates nothing."""
    return state_root() / "envs" / env_id / name


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
    path = state_root() / "envs" / env_id / "state.json"
    try:
        return EnvironmentRecord(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def all_env_ids() -> list[str]:
    """Every environment that has a state folder."""
    folder = state_root() / "envs"
    if not folder.is_dir():
        return []
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir())


def forget(env_id: str) -> None:
    """Remove the environment's state folder."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(state_root() / "envs" / env_id)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid still runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
