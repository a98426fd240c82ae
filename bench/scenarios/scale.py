"""Many environments at once: time until all are ready, idle memory each, the server settings."""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Callable
from pathlib import Path

from bench.measure import (
    Derived,
    ScenarioResult,
    TrialResult,
    Variant,
    alternate,
    median_ratio,
    one_line,
    row_name,
    stopwatch,
)
from bench.scenarios.context import CACHE_OFF, Context
from bench.workspace import CommandFailed, Workspace, docker
from bench.workspace import wait_for_select_1 as select_1

SETTINGS_SHOWN = (
    "shared_buffers",
    "max_connections",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "shm_size (container)",
)


def scale(ctx: Context) -> ScenarioResult:
    """N environments at once (threads calling `envctl up`): time to all ready, idle memory."""
    ws = ctx.ws
    result = ctx.begin("scale", f"Many environments at once ({ws.image}, port: auto)")
    profiles = [ws.profile(f"scale-{i:02d}") for i in range(1, max(ctx.plan.scale_levels) + 1)]
    settings: dict[str, str] = {}

    def trial(count: int) -> Callable[[], TrialResult]:
        def measure() -> dict[str, float]:
            chosen = profiles[:count]
            try:
                with stopwatch() as watch:
                    _up_in_parallel(ws, chosen)
                memory = _settled_memory(ws, count)
                if not settings:
                    settings.update(_server_settings(ws, chosen[0]))
                return {"all ready": watch.seconds, "idle memory per env": memory / count}
            finally:
                _down_in_parallel(ws, chosen)

        return measure

    first = f"{ctx.plan.scale_levels[0]} env"
    variants = [
        Variant(
            f"{count} env" + ("" if count == 1 else "s"),
            trial(count),
            baseline=None if count == ctx.plan.scale_levels[0] else first,
            keys=("all ready", "idle memory per env"),
            units={"idle memory per env": "MiB"},
        )
        for count in ctx.plan.scale_levels
    ]
    alternate(result, variants, ctx.plan.scale_rounds, ctx.progress)
    for variant in variants[1:]:
        count = int(variant.name.split()[0])
        ratio = median_ratio(
            result.row(row_name(variant.name, "all ready")),
            result.row(row_name(first, "all ready")),
        )
        result.derived[f"{count} envs: time per env / 1 env's"] = Derived(
            None if ratio is None else ratio / count
        )
    result.extra["server_settings"] = settings
    if settings:
        result.notes.append(
            "server settings: " + ", ".join(f"{key}={value}" for key, value in settings.items())
        )
    return result


def _up_in_parallel(ws: Workspace, profiles: list[Path]) -> None:
    def one(profile: Path) -> None:
        ws.up(profile, extra_env=CACHE_OFF)
        select_1(ws.url_of(profile))

    with concurrent.futures.ThreadPoolExecutor(len(profiles)) as pool:
        futures = [pool.submit(one, profile) for profile in profiles]
        errors = [error for f in futures if (error := f.exception()) is not None]
    if errors:
        raise CommandFailed(f"{len(errors)} of {len(profiles)} ups failed: {one_line(errors[0])}")


def _down_in_parallel(ws: Workspace, profiles: list[Path]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(profiles)) as pool:
        list(pool.map(ws.down, profiles))


def _settled_memory(ws: Workspace, count: int, attempts: int = 5) -> float:
    """Total MiB of the running environments once two readings agree within 5 %."""
    containers = ws.envctl_containers()
    if len(containers) != count:
        raise CommandFailed(f"expected {count} containers, found {len(containers)}")
    previous = None
    for _ in range(attempts):
        listing = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", *containers)
        total = sum(_mebibytes(line.split("/")[0]) for line in listing.splitlines())
        if previous is not None and abs(total - previous) <= 0.05 * previous:
            return total
        previous = total
    assert previous is not None
    return previous


_UNITS = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "kB": 1e3 / 2**20}
_UNITS.update({"MB": 1e6 / 2**20, "GB": 1e9 / 2**20})


def _mebibytes(text: str) -> float:
    match = re.match(r"\s*([\d.]+)\s*([A-Za-z]+)", text)
    if not match:
        raise ValueError(f"cannot read a memory size from {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _server_settings(ws: Workspace, profile: Path) -> dict[str, str]:
    import psycopg

    names = [name for name in SETTINGS_SHOWN if " " not in name]
    with psycopg.connect(ws.url_of(profile)) as conn:
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)", [names]
        ).fetchall()
    found = {str(name): str(value) for name, value in rows}
    shm = docker("inspect", "-f", "{{.HostConfig.ShmSize}}", ws.container_of(profile), check=False)
    if shm.isdigit():
        found["shm_size (container)"] = f"{int(shm) // 2**20}MB"
    return {name: found[name] for name in SETTINGS_SHOWN if name in found}
