"""Every environment `status` shows and `gc` judges, and removing the orphans: a `run` whose
envctl process is gone, an `up` that never finished starting, another state folder's
abandoned environment on a shared engine."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.environments.claim import is_orphan
from provisioner.environments.teardown import teardown
from provisioner.errors import EnvctlError
from provisioner.processes import process_alive
from provisioner.progress import Notify, quiet
from provisioner.runtime import FoundEnvironment, Runtime
from provisioner.runtime.labels import (
    MODE_LABEL,
    NAME_LABEL,
    OWNER_PID_LABEL,
    OWNER_START_LABEL,
    STATE_DIR_LABEL,
)
from provisioner.runtime.select import available_runtimes
from provisioner.state import EnvironmentRecord, all_env_ids, is_env_id, load_record, state_root


@dataclass(frozen=True)
class Survey:
    """One environment as `status` shows it and `gc` judges it: one definition for both."""

    env_id: str
    runtime: Runtime | None  # the answering runtime that holds it, if any
    record: EnvironmentRecord | None
    found: FoundEnvironment | None
    mine: bool  # of this state folder
    orphan: bool


def survey() -> list[Survey]:
    """Every environment of this state folder, and others' that are abandoned.

    A `run` environment is an orphan when its envctl process is gone; an `up` environment
    never is until `down`. Another state folder's environment (another runner's HOME on a
    shared engine) is left alone unless that folder is gone and its owner too.
    """
    envs = state_root() / "envs"
    rows: dict[str, Survey] = {}
    runtimes = available_runtimes()
    for runtime in runtimes:
        for found in runtime.environments():
            if not is_env_id(found.env_id):
                continue  # not an id envctl makes: nothing of ours
            state_dir = found.labels.get(STATE_DIR_LABEL, "")
            mine = bool(state_dir) and Path(state_dir).parent == envs
            record = load_record(found.env_id) if mine else None
            if record is not None:
                orphan = is_orphan(record)
            else:
                owner = int(found.labels.get(OWNER_PID_LABEL, "0") or 0)
                started = found.labels.get(OWNER_START_LABEL, "")
                orphan = mine or (
                    not Path(state_dir).exists()
                    and found.labels.get(MODE_LABEL) != "up"
                    and not process_alive(owner, int(started) if started.isdigit() else None)
                )
            rows[found.env_id] = Survey(found.env_id, runtime, record, found, mine, orphan)
    by_name = {runtime.name: runtime for runtime in runtimes}
    for env_id in all_env_ids():
        if env_id in rows and rows[env_id].mine:
            continue
        record = load_record(env_id)
        # Its runtime answers and holds nothing of it: only the record is left.
        answering = by_name.get(record.runtime if record else "docker")
        orphan = answering is not None and (record is None or is_orphan(record))
        rows[env_id] = Survey(env_id, answering, record, None, True, orphan)
    return [rows[env_id] for env_id in sorted(rows)]


def find_orphans() -> list[tuple[str, Runtime, bool]]:
    """Environments `gc` removes: (env_id, runtime, has a record in this state folder)."""
    return [
        (row.env_id, row.runtime, row.mine)
        for row in survey()
        if row.orphan and row.runtime is not None
    ]


def collect_garbage(notify: Notify = quiet) -> list[str]:
    """Remove every orphan: servers, networks, certificates; restore their env files."""
    removed: list[str] = []
    failures: list[EnvctlError] = []
    for env_id, runtime, recorded in find_orphans():
        notify(f"removing orphaned environment {env_id}")
        try:
            removed += teardown(env_id, runtime) if recorded else runtime.remove(env_id)
        except EnvctlError as exc:
            # The others still go; this one keeps its record for the next `gc`.
            notify(f"could not remove {env_id}: {exc.message}")
            failures.append(exc)
    if failures:
        raise failures[0]
    return removed


def status_rows() -> tuple[list[dict[str, Any]], int]:
    """The rows `envctl status` shows (this state folder's environments and the orphans), and
    how many live ones of other state folders it leaves out."""
    rows = []
    hidden = 0
    for seen in survey():
        record, found = seen.record, seen.found
        if not seen.mine and not seen.orphan:
            hidden += 1  # another state folder's live environment: not ours to show or remove
            continue
        rows.append(
            {
                "id": seen.env_id,
                "name": record.name
                if record
                else (found.labels.get(NAME_LABEL, "") if found else ""),
                "profile": record.profile if record else None,
                "runtime": record.runtime
                if record
                else (seen.runtime.name if seen.runtime else "docker"),
                "mode": record.mode if record else "unknown",
                "status": found.status if found else "gone",
                "orphan": seen.orphan,
                "starting": bool(record and record.starting),
                "port": record.connection.get("port") if record and record.connection else None,
                "age_seconds": round(time.time() - record.created) if record else None,
            }
        )
    return rows, hidden
