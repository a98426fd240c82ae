"""Removing an environment: its suite's processes, its server, its env file put back byte for
byte, its certificates and the folders made for it, and last its record. Every exit path ends
here: `down`, the end of `run`, Ctrl-C, a failed start, `gc`."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from pathlib import Path

from provisioner.envfile import EnvFileGuard
from provisioner.errors import EnvctlError
from provisioner.processes import kill_group, start_time
from provisioner.runtime import Runtime
from provisioner.state import EnvironmentRecord, env_state_dir, forget, load_record, save_record

CERTS_FOLDER = ".envctl"
CREATED_FOLDERS = "created_folders"
SUITE_GROUPS = "suite_groups"
SUITE_GRACE_SECONDS = 5.0


def down(env_id: str, runtime: Runtime | None = None) -> list[str]:
    """Remove the environment `env_id` and restore its env file; return what was removed."""
    from provisioner.runtime.select import runtime_named

    if runtime is None:
        record = load_record(env_id)
        runtime = runtime_named(record.runtime if record else "docker")
    return teardown(env_id, runtime)


def teardown(env_id: str, runtime: Runtime) -> list[str]:
    """Remove everything of `env_id`; return what was removed. If the server cannot be
    removed, the user's files are still put back and the record kept for `gc`."""
    record = load_record(env_id)
    # The suite first: it would only see its database vanish.
    suites = _stop_suites(record)
    try:
        removed = runtime.remove(env_id)
    except EnvctlError as exc:
        # The server could not be removed (the engine is gone): still put the user's files back,
        # and keep the record so that `envctl gc` can finish the job later.
        failure: EnvctlError | None = exc
        removed = []
    else:
        failure = None
    removed = suites + removed
    restored = EnvFileGuard(env_state_dir(env_id)).restore()
    if restored is not None:
        removed.append(str(restored))
    certificates = _remove_certificates(record)
    if certificates is not None:
        removed.append(certificates)
    removed += _remove_created_folders(record)
    if failure is not None:
        raise failure
    forget(env_id)
    return removed


def record_suite_group(env_id: str, pgid: int) -> None:
    """Remember a suite's process group, so that teardown and `gc` stop what is left of it."""
    record = load_record(env_id)
    if record is None:
        return
    groups = [*record.details.get(SUITE_GROUPS, []), [pgid, start_time(pgid)]]
    save_record(dataclasses.replace(record, details={**record.details, SUITE_GROUPS: groups}))


def _stop_suites(record: EnvironmentRecord | None) -> list[str]:
    stopped = []
    for pgid, leader_start in record.details.get(SUITE_GROUPS, []) if record else []:
        if kill_group(int(pgid), leader_start, grace=SUITE_GRACE_SECONDS):
            stopped.append(f"suite process group {pgid}")
    return stopped


def _remove_certificates(record: EnvironmentRecord | None) -> str | None:
    certs_dir = record.details.get("certs_dir") if record else None
    folder = Path(certs_dir) if certs_dir else None
    if folder is None or not folder.exists():
        return None
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        if folder.parent.name == CERTS_FOLDER:
            folder.parent.rmdir()  # only when empty: other environments may use it
    return f"certificates {folder}"


def _remove_created_folders(record: EnvironmentRecord | None) -> list[str]:
    """Remove the folders `up` made for the env file, innermost first, if they are empty."""
    created = record.details.get(CREATED_FOLDERS) if record else None
    removed = []
    for name in reversed(created if isinstance(created, list) else []):
        try:
            Path(str(name)).rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # something else was put there since: not ours to remove
            break
        removed.append(f"folder {name}")
    return removed
