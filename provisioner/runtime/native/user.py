"""The unprivileged user servers and tools run as when envctl is root (Postgres refuses root)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.errors import InfrastructureError
from provisioner.processes import run

SERVER_USER = "envctl-postgres"


@dataclass(frozen=True)
class ServerUser:
    """The unprivileged user servers and tools run as when envctl is root."""

    name: str
    uid: int
    gid: int


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
        result = run([*argv, SERVER_USER], timeout=60)
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


def as_server(user: ServerUser | None) -> dict[str, Any]:
    """subprocess arguments that run a program as the server's user, files private to it."""
    if user is None:
        return {"umask": 0o077}
    return {"user": user.uid, "group": user.gid, "extra_groups": [], "umask": 0o077}


def own(path: Path, user: ServerUser | None) -> None:
    if user is not None:
        os.chown(path, user.uid, user.gid, follow_symlinks=False)


def child_environment(folder: Path, user: ServerUser | None) -> dict[str, str]:
    # The caller's PG* variables (PGHOST, PGDATA, PGPASSWORD...) must not steer our tools.
    variables = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    if user is not None:
        variables["HOME"] = str(folder)  # root's home is not readable by the server
    return variables
