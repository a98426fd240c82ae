"""What the file should point at: the running environment, or what the profile fixes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provisioner.environments import Environment
    from provisioner.profile import Profile


@dataclass(frozen=True)
class Target:
    """What the file should point at: the running environment, or what the profile fixes."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    database: str | None = None
    sslmode: str | None = None
    sslrootcert: str | None = None
    running: bool = False
    profile_ref: str = "PROFILE"


def _target(profile: Profile | None, running: Environment | None) -> Target:
    ref = _profile_ref(profile)
    if running is not None:
        conn = running.connection
        return Target(
            host=conn.host,
            port=conn.port,
            user=conn.user,
            database=conn.database,
            sslmode=conn.sslmode,
            sslrootcert=str(conn.sslrootcert) if conn.sslrootcert else None,
            running=True,
            profile_ref=ref,
        )
    if profile is None:
        return Target()
    pg = profile.postgres
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(pg.host, pg.host)
    return Target(
        host=host,
        port=None if pg.port == "auto" else pg.port,
        user=pg.user,
        database=pg.database,
        sslmode=pg.ssl.mode,
        profile_ref=ref,
    )


def _profile_ref(profile: Profile | None) -> str:
    if profile is None or profile.path is None:
        return profile.name if profile else "PROFILE"
    with contextlib.suppress(ValueError):
        return str(profile.path.relative_to(Path.cwd()))
    return str(profile.path)
