"""What `up` would refuse, checked before anything starts: `validate` runs the same checks.

The models check each value on its own; these checks need the file system (seed files, the env
file's folder) or the values rendered together (the variables a suite gets).
"""

from __future__ import annotations

import errno
import os
import stat
import string
from pathlib import Path

from provisioner.connection import Connection
from provisioner.envfile import check_files, render_template, role_values
from provisioner.errors import ProfileError
from provisioner.presets import PRESETS
from provisioner.profile import MAX_VARIABLE_BYTES, Profile

# All variables together are one block of the suite's environment; Linux allows 2 MiB for the
# arguments and environment of a new process (ARG_MAX), and the user's own take part of that.
MAX_ENVIRONMENT_BYTES = 1024 * 1024
# Stand-ins for what only a running environment knows: the longest a port and a random
# password (secrets.token_urlsafe(18)) can be.
_SAMPLE_PORT = 65535
_SAMPLE_PASSWORD = "x" * 24


def check_before_start(profile: Profile) -> None:
    """Refuse a profile that `up` could not bring up: raise ProfileError naming file and key."""
    check_seed_files(profile)
    check_files(profile)
    check_variables(profile)
    if profile.postgres.migrate is not None:
        # Only a profile with a migration step imports what runs it (subprocess, signals).
        from provisioner.migrate import check_migration

        check_migration(profile)


def check_seed_files(profile: Profile) -> None:
    """Every seed file exists and can be read: a file or a folder (a directory-format dump)."""
    for index, item in enumerate(profile.postgres.seed):
        if item.path is None:
            continue
        path = profile.folder / item.path
        where = f"{profile.path}: postgres.seed[{index}]: {path}"
        try:
            info = os.stat(path)
        except FileNotFoundError:
            raise ProfileError(
                f"{where} does not exist", hint="paths are relative to the profile's folder"
            ) from None
        except OSError as exc:
            what = "is a symlink loop" if exc.errno == errno.ELOOP else f"({exc.strerror})"
            raise ProfileError(f"{where} cannot be read: {what}") from None
        folder = stat.S_ISDIR(info.st_mode)
        if not (folder or stat.S_ISREG(info.st_mode)):
            raise ProfileError(
                f"{where} is not a regular file or folder",
                hint="name a SQL file or a pg_dump backup",
            )
        if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
            raise ProfileError(
                f"{where} cannot be read (permission denied)",
                hint="make it readable by the user who runs envctl",
            )


def check_variables(profile: Profile) -> None:
    """Render the variables once with stand-in values: each, and all of them, must fit."""
    values = {
        **_sample_connection(profile).template_values(),
        **role_values(profile.postgres.roles),
    }
    templates: list[tuple[str, str]] = [
        item for preset in profile.env.preset for item in PRESETS[preset].items()
    ]
    templates += list(profile.env.vars.items())
    total = sum(len(name) + len(value) + 2 for name, value in profile.test.env.items())
    for name, template in templates:
        size = len(name) + 1 + _rendered_size(template, values)
        if size >= MAX_VARIABLE_BYTES:
            raise ProfileError(
                f"{profile.path}: env.vars: {name} would be about {size} bytes, over "
                f"{MAX_VARIABLE_BYTES // 1024} KiB, the limit of one environment variable",
                hint="shorten its template (or postgres.password)",
            )
        total += size + 1
        _render(profile, name, template, values)
    if total > MAX_ENVIRONMENT_BYTES:
        raise ProfileError(
            f"{profile.path}: env.vars and test.env would be about {total} bytes together, "
            f"over the cap of {MAX_ENVIRONMENT_BYTES // 1024 // 1024} MiB for a suite's variables",
            hint="write fewer or shorter variables",
        )


def _render(profile: Profile, name: str, template: str, values: dict[str, str]) -> None:
    # The models allow only plain {name}s of known fields; rendering once is the proof.
    try:
        render_template(template, values)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise ProfileError(
            f"{profile.path}: env.vars: {name}: '{template}' cannot be rendered ({exc})",
            hint="write placeholders as plain {url}, {host}, {port}...",
        ) from None


def _rendered_size(template: str, values: dict[str, str]) -> int:
    # Summed, not rendered: a template may repeat {password} until the text is gigabytes.
    size = 0
    for literal, field, _, _ in string.Formatter().parse(template):
        size += len(literal.encode())
        if field is not None:
            size += len(values.get(field, "").encode("utf-8", errors="surrogateescape"))
    return size


def _sample_connection(profile: Profile) -> Connection:
    pg = profile.postgres
    certs = None
    if pg.ssl.mode != "disable":
        folder = profile.env_file.parent if profile.env_file else Path("/")
        certs = folder / ".envctl" / profile.env_id / "client.key"
    return Connection(
        host=pg.host,
        port=_SAMPLE_PORT if pg.port == "auto" else pg.port,
        user=pg.user,
        password=pg.password or _SAMPLE_PASSWORD,
        database=pg.database,
        sslmode=pg.ssl.mode,
        sslrootcert=certs,
        sslcert=certs,
        sslkey=certs,
    )
