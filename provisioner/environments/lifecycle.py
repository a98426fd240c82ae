"""The lifecycle of an environment: `up`, and `environment()` around a `with` block or a test
suite; `reset` and `dump` of a running one.

`up` claims the profile, records the environment, runs the start's steps (start.py) and on any
failure (an error, a signal) tears down whatever was created.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from provisioner import github
from provisioner.cache.seed_memo import remembered_seed
from provisioner.connection import password_forms, secrets_hidden_in_errors
from provisioner.environments.claim import claim, refuse_shared_env_file
from provisioner.environments.environment import Environment
from provisioner.environments.start import start
from provisioner.environments.teardown import teardown
from provisioner.errors import InfrastructureError, UsageError, VersionUnknownError
from provisioner.processes import start_time
from provisioner.profile import Profile
from provisioner.progress import Notify, quiet
from provisioner.runtime import Runtime
from provisioner.state import EnvironmentRecord, env_state_dir, load_record, save_record


def open_runtime(profile: Profile, override: str | None = None, notify: Notify = quiet) -> Runtime:
    """The runtime that serves `profile`, saying which one and why."""
    from provisioner.runtime.select import choose_runtime

    choice = choose_runtime(profile, override)
    notify(f"runtime: {choice.reason}")
    return choice.runtime


def up(
    profile: Profile,
    *,
    mode: str = "up",
    runtime: Runtime | None = None,
    runtime_override: str | None = None,
    notify: Notify = quiet,
    makes_databases: bool = False,
) -> Environment:
    """Start `profile`'s environment and return it once it accepts connections.

    `makes_databases`: what runs against it will make databases from its templates (clones
    per worker or per test, resets), which a runtime may place to make that fast."""
    from provisioner.preflight import check_before_start

    check_before_start(profile)
    profile = settle_version(profile, runtime_override, notify)
    runtime = runtime or open_runtime(profile, runtime_override, notify)
    env_id = profile.env_id
    claim(profile, runtime, notify)
    state_dir = env_state_dir(env_id)
    record = EnvironmentRecord(
        env_id=env_id,
        name=profile.name,
        profile=str(profile.path) if profile.path else None,
        runtime=runtime.name,
        mode=mode,
        owner_pid=os.getpid(),
        created=time.time(),
        connection={},
        env_file=str(profile.env_file) if profile.env_file else None,
        owner_start=start_time(os.getpid()),
        starting=True,
    )
    save_record(record)
    password = profile.postgres.password or secrets.token_urlsafe(18)
    github.mask(password)  # before anything could print it
    try:
        refuse_shared_env_file(record)
        # Every error on the way may carry a server log or a tool's output: none shows it.
        with secrets_hidden_in_errors(password_forms(password)):
            return start(
                profile,
                record,
                runtime,
                state_dir,
                notify,
                password,
                makes_databases=makes_databases,
            )
    except BaseException:
        # Whatever stopped us (an error, a signal), nothing of this environment stays.
        teardown(env_id, runtime)
        raise


@contextlib.contextmanager
def environment(
    profile: Profile,
    *,
    notify: Notify = quiet,
    keep: bool = False,
    runtime_override: str | None = None,
    makes_databases: bool = False,
) -> Iterator[Environment]:
    """Bring `profile` up for the `with` block and always tear it down afterwards."""
    profile = settle_version(profile, runtime_override, notify)
    runtime = open_runtime(profile, runtime_override, notify)
    env = up(profile, mode="run", runtime=runtime, notify=notify, makes_databases=makes_databases)
    try:
        yield env
    finally:
        if keep:
            _mark_kept(env)
        else:
            notify("removing the environment")
            teardown(env.env_id, runtime)


def _mark_kept(env: Environment) -> None:
    # A kept environment is no longer owned by this process: it lives until `envctl down`.
    record = load_record(env.env_id)
    if record is None:
        raise InfrastructureError(f"the record of environment {env.env_id} is gone")
    save_record(dataclasses.replace(record, mode="up"))


def settle_version(
    profile: Profile, runtime_override: str | None = None, notify: Notify = quiet
) -> Profile:
    """`profile` with `version: auto` (or `nearest`) replaced by a major, before the runtime is
    chosen (which image, which binaries): the backup's own, or with `nearest` the oldest major
    here that is not older than it (saying so when it is another)."""
    pg = profile.postgres
    if pg.version not in ("auto", "nearest"):
        return profile
    needed = _backup_major(profile)
    if needed is None:
        raise VersionUnknownError(
            f"{profile.path or profile.name}: postgres.version is {pg.version} but no backup in "
            "postgres.seed says which version it came from",
            hint_template="choose one with {setting} 17 (or any major from 12 to 18), or add a "
            "pg_dump backup to postgres.seed",
        )
    chosen = needed
    if pg.version == "nearest":
        from provisioner.runtime.majors import available_majors
        from provisioner.runtime.select import wanted_runtime

        here = available_majors(pg, wanted_runtime(profile, runtime_override))
        nearest = here.nearest_newer(needed)
        if nearest is not None and nearest != needed:
            notify(
                f"the backup comes from PostgreSQL {needed}, which is not here: restoring into "
                f"{nearest}, the nearest newer major here"
            )
            chosen = nearest
    postgres = pg.model_copy(update={"version": str(chosen)})
    return profile.model_copy(update={"postgres": postgres})


def _backup_major(profile: Profile) -> int | None:
    """The newest major the profile's backups need (see DumpInfo.required_major), read from the
    seed memo when every file is unchanged since it was read, else from the files' headers."""
    files = [(profile.folder / item.path).resolve() for item in profile.postgres.seed if item.path]
    remembered = [remembered_seed(path) for path in files]
    if files and all(entry is not None and entry.get("major") for entry in remembered):
        return max(int(entry["major"]) for entry in remembered if entry is not None)
    from provisioner.postgres.dumpfile import inspect_dump

    majors = [info.required_major for info in map(inspect_dump, files) if info.required_major]
    return max(majors) if majors else None


def reset(env: Environment) -> float:
    """Put the working database back to its seeded state; return the seconds it took."""
    from provisioner.postgres.databases import reset_database

    return reset_database(env.connection)


def dump(env: Environment, output: Path, fmt: str = "custom") -> Path:
    """Write a backup of the running environment's database to `output` (mode 0600)."""
    import tempfile

    from provisioner.runtime.select import runtime_named

    check_dump_output(output)
    runtime = runtime_named(env.runtime)
    # An empty folder copied in is one the server's user may write to, in every runtime.
    with tempfile.TemporaryDirectory(prefix="envctl-dump-") as empty:
        folder = runtime.copy_in(env.env_id, Path(empty))
    inside = f"{folder}/backup"
    flag = {"custom": "-Fc", "plain": "-Fp"}[fmt]
    result = runtime.exec(
        env.env_id,
        ["pg_dump", flag, "--no-password", "-U", env.user, "-d", env.database, "-f", inside],
    )
    if result.exit_code != 0:
        raise InfrastructureError(f"pg_dump failed: {result.output.strip()[-500:]}")
    partial = output.with_name(f".{output.name}.envctl-tmp")
    try:
        runtime.copy_out(env.env_id, inside, partial)
        partial.chmod(0o600)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def check_dump_output(output: Path) -> None:
    """Refuse an output that cannot be written, before pg_dump spends its time on the backup."""
    folder = output.parent
    if output.is_dir():
        raise UsageError(
            f"{output} is a folder, not a backup file", hint=f"e.g. -o {output / 'backup.dump'}"
        )
    if not folder.is_dir():
        raise UsageError(
            f"cannot write {output}: the folder {folder} does not exist",
            hint=f"create it first (mkdir -p {folder}) or choose another -o path",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"cannot write {output}: the folder {folder} is not writable",
            hint="choose another -o path",
        )
