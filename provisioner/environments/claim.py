"""The claim: which process starts (and so owns) a profile's environment, and when an owner is
gone. One `up` of a profile at a time; a claim whose owner died is taken over, its leftovers
torn down first; two profiles may not write one env file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import NoReturn

from provisioner.environments.teardown import teardown
from provisioner.errors import AlreadyRunningError
from provisioner.processes import process_alive
from provisioner.profile import Profile
from provisioner.progress import Notify
from provisioner.runtime import Runtime
from provisioner.state import EnvironmentRecord, all_env_ids, env_state_dir, load_record

CLAIM_FILE = "claim"


def claim(profile: Profile, runtime: Runtime, notify: Notify) -> None:
    """Make this process the one that starts `profile`'s environment, or refuse.

    The claim is a file in the environment's state folder that only one of two `up`s at the
    same moment can create (see _create_claim); teardown removes it with the folder.
    """
    for _ in range(2):
        path = env_state_dir(profile.env_id) / CLAIM_FILE
        if not _create_claim(path):
            if _stale_claim(profile, path, runtime, notify):
                continue
            _refuse(profile)
        if any(env.env_id == profile.env_id for env in runtime.environments()):
            # Resources without a claim: left by a crash before envctl recorded anything.
            notify("removing leftovers of an earlier crashed start")
            runtime.remove(profile.env_id)
        return
    _refuse(profile)


def _create_claim(claim: Path) -> bool:
    """Create `claim` holding this process's PID; False if it exists already.

    The PID is written to a file of its own first, then linked into place: a claim is never
    seen empty, which another start would take for one whose owner died before writing it.
    """
    draft = claim.with_name(f".{claim.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        os.link(draft, claim)
        return True
    except FileExistsError:
        return False
    finally:
        draft.unlink(missing_ok=True)


def _stale_claim(profile: Profile, claim: Path, runtime: Runtime, notify: Notify) -> bool:
    """Remove a claim (and its environment) whose owner is gone; True if it was stale."""
    record = load_record(profile.env_id)
    if record is not None:
        if not is_orphan(record):
            return False
        notify(f"removing an orphaned environment left by process {record.owner_pid}")
        teardown(profile.env_id, runtime)
        return True
    try:
        owner = int(claim.read_text() or "0")
    except (OSError, ValueError):
        owner = 0
    if owner and process_alive(owner):
        return False
    teardown(profile.env_id, runtime)
    return True


def _refuse(profile: Profile) -> NoReturn:
    record = load_record(profile.env_id)
    where = ""
    if record is not None and record.connection:
        where = f" on {record.connection['host']}:{record.connection['port']}"
    raise AlreadyRunningError(
        f"an environment for {profile.path or profile.name} is already up{where}",
        hint=f"use it, or remove it first with `envctl down {profile.path or profile.name}`",
    )


def is_orphan(record: EnvironmentRecord) -> bool:
    """An environment whose owning envctl process is gone: a `run`'s, or an `up`'s that had not
    finished starting. A finished `up` lives until `down`."""
    owned = record.mode != "up" or record.starting
    return owned and not process_alive(record.owner_pid, record.owner_start)


def refuse_shared_env_file(mine: EnvironmentRecord) -> None:
    """Refuse a second environment writing the env file another one holds.

    Both would merge into it and each `down` would put back what it saw before: the second
    one's "original" is the first one's variables, so the user's own file would be lost.
    Checked once this environment's record is saved, so that of two starting at once the
    later one (by start time, then id) gives way whichever checks first.
    """
    if mine.env_file is None:
        return
    for env_id in all_env_ids():
        other = load_record(env_id)
        if other is None or env_id == mine.env_id or other.env_file is None:
            continue
        if not _same_file(other.env_file, mine.env_file):
            continue
        if (other.created, other.env_id) > (mine.created, mine.env_id):
            continue
        name = other.profile or other.name
        fix = "`envctl gc`" if is_orphan(other) else f"`envctl down {name}`"
        raise AlreadyRunningError(
            f"env.file {mine.env_file} is already written by the environment of {name} "
            f"({other.env_id}): a second one would lose the file you had before",
            hint=f"remove that one first ({fix}), or give this profile its own env.file",
        )


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()
