"""What seed data costs: a seeded start, resetting between runs, and a clone per test."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.measure import (
    Derived,
    ScenarioResult,
    TrialResult,
    Variant,
    alternate,
    median_ratio,
    stopwatch,
)
from bench.scenarios.context import CACHE_OFF, Context, cold_and_warm
from bench.seeds import ensure_seed, seed_info
from bench.workspace import Workspace, docker, run
from bench.workspace import wait_for_select_1 as select_1

FULL_SIZES = (5, 50, 200)  # MB; the derived ratios below name these
SERVER_SIDE = "server side, as envctl reports it"
SMALL_SEED_SQL = (
    "CREATE TABLE small (id int PRIMARY KEY, v text NOT NULL); "
    "INSERT INTO small SELECT i, md5(i::text) FROM generate_series(1, 1000) AS i"
)


def seeded(ctx: Context) -> ScenarioResult:
    """`envctl up` with a 5/50/200 MB custom-format seed: cold (restored) against warm (cached)."""
    ws = ctx.ws
    result = ctx.begin("seeded", f"Seeded start: envctl up with a pg_dump seed ({ws.image})")
    variants = []
    for size in ctx.plan.seed_sizes:
        dump = ensure_seed(ws, size, ctx.progress)
        profile = ws.profile(f"seed-{size}mb", seed=[str(dump)])
        variants += cold_and_warm(ctx, f"{size} MB", profile, note=seed_info(dump).describe())
    alternate(result, variants, ctx.plan.rounds, ctx.progress)
    ctx.cache.annotate(result)
    missing = "" if ctx.plan.seed_sizes == FULL_SIZES else "needs the full run's sizes"
    for kind in ("cold", "warm"):
        result.derived[f"200 MB / 5 MB, {kind}"] = Derived(
            median_ratio(result.row(f"200 MB, {kind}"), result.row(f"5 MB, {kind}")), note=missing
        )
    result.derived["50 MB: warm / cold (cache / restore)"] = Derived(
        median_ratio(result.row("50 MB, warm"), result.row("50 MB, cold")), note=missing
    )
    return result


def reset(ctx: Context) -> ScenarioResult:
    """`envctl reset` from the template against restoring the seed again."""
    ws = ctx.ws
    size = ctx.plan.reset_size
    dump = ensure_seed(ws, size, ctx.progress)
    result = ctx.begin("reset", f"Reset between runs, {size} MB seed ({ws.image})")
    profile = ws.profile(f"reset-{size}mb", seed=[str(dump)])
    restore = "re-restore: DROP/CREATE + pg_restore (docker exec)"
    copied: set[str] = set()

    def restore_trial() -> float:
        container = ws.container_of(profile)
        inside = "/tmp/bench-seed.dump"
        if container not in copied:
            docker("cp", str(dump), f"{container}:{inside}")
            copied.add(container)
        psql = ["docker", "exec", "-u", "postgres", container, "psql", "-X", "-q", "-U"]
        with stopwatch() as watch:
            run(
                [
                    *psql,
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    "postgres",
                    "-c",
                    "DROP DATABASE IF EXISTS app WITH (FORCE)",
                    "-c",
                    "CREATE DATABASE app",
                ]
            )
            run(
                [
                    "docker",
                    "exec",
                    "-u",
                    "postgres",
                    container,
                    "pg_restore",
                    "--no-password",
                    "--exit-on-error",
                    "-U",
                    "postgres",
                    "-d",
                    "app",
                    inside,
                ]
            )
            select_1(ws.url_of(profile))
        return watch.seconds

    def reset_trial() -> dict[str, float]:
        with stopwatch() as watch:
            done = ws.envctl("reset", str(profile))
            select_1(ws.url_of(profile))
        reported = re.search(r"in (\d+(?:\.\d+)?) ms", done.stderr + done.stdout)
        values = {"": watch.seconds}
        if reported:
            values[SERVER_SIDE] = float(reported.group(1)) / 1000
        return values

    def recreate_trial() -> float:
        ws.down(profile)
        copied.clear()
        with stopwatch() as watch:
            ws.up(profile, extra_env=CACHE_OFF)
            select_1(ws.url_of(profile))
        return watch.seconds

    variants = [
        Variant(restore, restore_trial, note="same container, same pg_restore as envctl"),
        Variant(
            "envctl reset",
            reset_trial,
            baseline=restore,
            keys=("", SERVER_SIDE),
            note="CLI wall time, incl. Python start; CREATE DATABASE … TEMPLATE",
        ),
    ]
    if not ctx.plan.quick:
        variants.append(
            Variant(
                "down + up, cold",
                recreate_trial,
                baseline=restore,
                note="down untimed; ENVCTL_CACHE=off",
            )
        )
    ctx.cache.make_cold()
    ws.up(profile, extra_env=CACHE_OFF)
    try:
        alternate(result, variants, ctx.plan.rounds, ctx.progress)
    finally:
        ws.down(profile)
    return result


def clone(ctx: Context) -> ScenarioResult:
    """CREATE DATABASE … TEMPLATE per test, through envctl's Python API, small and big."""
    ws = ctx.ws
    size = ctx.plan.reset_size
    dump = ensure_seed(ws, size, ctx.progress)
    result = ctx.begin("clone", f"Per-test clone of the seeded template ({ws.image})")
    small_profile = ws.profile("clone-small", seed=[{"sql": SMALL_SEED_SQL}])
    big_profile = ws.profile(f"clone-{size}mb", seed=[str(dump)])
    counter = itertools.count()
    with ws.process_env(**CACHE_OFF), contextlib.ExitStack() as stack:
        opened, how = _clone_api(ws, stack)
        small = opened(small_profile)
        big = opened(big_profile)
        result.notes.append(f"clones made through {how}")

        def trial(env: Any) -> Callable[[], TrialResult]:
            def measure() -> dict[str, float]:
                name = f"bench_clone_{next(counter)}"
                with stopwatch() as made:
                    env.clone(name)
                with stopwatch() as dropped:
                    env.drop(name)
                return {"clone": made.seconds, "drop": dropped.seconds}

            return measure

        small_name = "small template (1000 rows)"
        variants = [
            Variant(small_name, trial(small), keys=("clone", "drop")),
            Variant(f"{size} MB template", trial(big), baseline=small_name, keys=("clone", "drop")),
        ]
        alternate(result, variants, ctx.plan.clones, ctx.progress)
    return result


def _clone_api(ws: Workspace, stack: contextlib.ExitStack) -> tuple[Callable[[Path], Any], str]:
    """A function that brings a profile up and returns something with clone()/drop()."""
    try:
        from provisioner import api

        environment = api.environment
    except (ImportError, AttributeError):
        return (lambda path: stack.enter_context(_cli_clones(ws, path))), "raw SQL (no API)"
    return (lambda path: stack.enter_context(environment(path))), "provisioner.api.environment"


@contextlib.contextmanager
def _cli_clones(ws: Workspace, profile: Path) -> Iterator[Any]:
    """Fallback when provisioner.api is missing: `envctl up`, then CREATE DATABASE by hand."""
    import psycopg
    from psycopg import sql

    class Clones:
        def __init__(self, url: str) -> None:
            self.url = url

        def _admin(self, statement: Any) -> None:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(statement)

        def clone(self, name: str) -> None:
            self._admin(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier("envctl_template_app")
                )
            )

        def drop(self, name: str) -> None:
            self._admin(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

    ws.up(profile, extra_env=CACHE_OFF)
    try:
        yield Clones(ws.url_of(profile))
    finally:
        ws.down(profile)
