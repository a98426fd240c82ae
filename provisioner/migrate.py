"""The app's migrations, run once after the seed: part of the seeded state the cache keeps.

`postgres.migrate` names a command (alembic, prisma, rails, a script) that runs on the host in
its workdir with the environment's variables, the same the env file gets. Its inputs, globs of
the files it reads, go into the cache key by content: an edit of any is a miss, and a start
from the cache runs no migration at all.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from provisioner.command import command_argv, run_suite
from provisioner.connection import Connection, hide_secrets, password_forms
from provisioner.envfile import render_env
from provisioner.errors import ProfileError, SeedError
from provisioner.profile import MigrateConfig, Profile

TAIL_LINES = 20


class MigrationError(SeedError):
    """The migration command failed: nothing of that start is kept or cached."""


def workdir_of(profile: Profile, step: MigrateConfig) -> Path:
    return (profile.folder / step.workdir).resolve()


def check_migration(profile: Profile) -> None:
    """Refuse, before anything starts, a migration command that cannot run."""
    step = profile.postgres.migrate
    if step is None:
        return
    where = f"{profile.path}: postgres.migrate"
    cwd = workdir_of(profile, step)
    if not cwd.is_dir():
        raise ProfileError(
            f"{where}.workdir: {cwd} is not a folder", hint="it is relative to the profile's folder"
        )
    program = command_argv(step.command)[0]
    found = (cwd / program).is_file() if os.sep in program else shutil.which(program)
    if not found:
        raise ProfileError(
            f"{where}.command: '{program}' was not found",
            hint="install it, or name it by its path (relative to postgres.migrate.workdir)",
        )


def inputs_digest(profile: Profile) -> str:
    """The content of every file the migrations read, as one SHA-256 (names and bytes)."""
    step = profile.postgres.migrate
    digest = hashlib.sha256()
    if step is None:
        return digest.hexdigest()
    folder = workdir_of(profile, step)
    files = sorted({path for pattern in step.inputs for path in folder.glob(pattern)})
    for path in files:
        if not path.is_file():
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def run_migration(
    profile: Profile,
    connection: Connection,
    log_path: Path,
    notify: Callable[[str], None],
    on_start: Callable[[int], None] | None = None,
) -> float:
    """Run the profile's migration command against `connection`; its seconds."""
    step = profile.postgres.migrate
    assert step is not None
    argv = command_argv(step.command)
    rendered = render_env(connection, profile.env.preset, profile.env.vars, profile.postgres.roles)
    variables = {**rendered, **step.env}
    shown = shlex.join(argv)
    notify(f"migrating: {shown}")
    started = time.monotonic()
    with log_path.open("wb") as output:
        result = run_suite(
            argv,
            cwd=workdir_of(profile, step),
            env=variables,
            timeout=step.timeout,
            on_start=on_start,
            output=output,
            key="postgres.migrate",
        )
    seconds = time.monotonic() - started
    if result.exit_code != 0:
        lines = log_path.read_bytes().decode("utf-8", errors="replace").splitlines()
        tail = hide_secrets("\n".join(lines[-TAIL_LINES:]), password_forms(connection.password))
        raise MigrationError(
            f"postgres.migrate: `{shown}` exited with {result.exit_code}"
            + (f"; its last lines:\n{tail}" if tail else " and printed nothing"),
            hint="fix the migration (nothing of this start was kept or cached)",
        )
    notify(f"migrated in {seconds:.1f}s")
    return seconds
