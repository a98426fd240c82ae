"""What an app's migrations cost: a warm start with a migration step, and a Medusa-style suite
that creates and migrates a database per test file."""

from __future__ import annotations

import contextlib
import json
import secrets
import statistics
import sys
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
from bench.medusa_runner import PHASES, SUMMARY
from bench.migration_set import write_migration_set
from bench.migrator import migrate
from bench.scenarios.context import CACHE_OFF, Context, envctl_up_trial
from bench.workspace import ROOT, Workspace, envctl_argv, run
from bench.workspace import wait_for_select_1 as select_1

MIGRATOR = ROOT / "bench" / "migrator.py"
RUNNER = ROOT / "bench" / "medusa_runner.py"
MIGRATIONS = 200  # the target: a warm start with a 200-file migration step


def migration_folder(ws: Workspace, count: int = MIGRATIONS) -> Path:
    """The generated migration set of `count` files, in the workspace (made once per run)."""
    folder = ws.root / f"migrations-{count}"
    return folder if folder.is_dir() else write_migration_set(folder, count)


def migrate_step(ws: Workspace, folder: Path) -> dict[str, Any]:
    """`postgres.migrate` running the migrator over `folder`, its files the cache key's inputs."""
    return {
        "command": [sys.executable, str(MIGRATOR), folder.name],
        "workdir": str(folder.parent),
        "inputs": [f"{folder.name}/*.sql"],
    }


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new, empty database on the server of `url` (dropped afterwards); its conninfo."""
    import psycopg
    from psycopg import conninfo, sql

    name = f"bench_fresh_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield conninfo.make_conninfo(url, dbname=name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def server(ws: Workspace, name: str) -> Iterator[str]:
    """A plain environment up for the whole scenario (cache off); its DATABASE_URL."""
    profile = ws.profile(name)
    ws.up(profile, extra_env=CACHE_OFF)
    try:
        yield ws.url_of(profile)
    finally:
        ws.down(profile)


def migrate_scenario(ctx: Context) -> ScenarioResult:
    """Warm `envctl up` with a 200-file `postgres.migrate` against the same profile without."""
    ws = ctx.ws
    result = ctx.begin(
        "migrate", f"Warm start with a {MIGRATIONS}-file migration step ({ws.image})"
    )
    folder = migration_folder(ws)
    # `schemas` makes the baseline seeded as well: both profiles make a template and are kept
    # in the cache alike, and differ only in the migration step.
    plain = ws.profile("migrate-none", schemas=["app"])
    migrated = ws.profile(
        f"migrate-{MIGRATIONS}", schemas=["app"], migrate=migrate_step(ws, folder)
    )
    baseline = "envctl up, warm, no migration step"
    with_step = f"envctl up, warm, {MIGRATIONS} migrations"
    cold = f"envctl up, cold, {MIGRATIONS} migrations"
    with server(ws, "migrate-target") as url:

        def cold_start() -> float:
            # ENVCTL_CACHE=off neither looks up nor stores, so the warm rows' entries can stay:
            # emptying them would make every round re-warm both profiles (~25 s, untimed).
            try:
                with stopwatch() as watch:
                    ws.up(migrated, extra_env=CACHE_OFF)
                    select_1(ws.url_of(migrated))
                return watch.seconds
            finally:
                ws.down(migrated)

        def tool_alone() -> float:
            with fresh_database(url) as target, stopwatch() as watch:
                run([sys.executable, str(MIGRATOR), str(folder), "--url", target])
            return watch.seconds

        variants = [
            Variant(baseline, envctl_up_trial(ctx, baseline, plain, kind="warm")),
            Variant(
                with_step,
                envctl_up_trial(ctx, with_step, migrated, kind="warm"),
                baseline=baseline,
            ),
            Variant(
                cold,
                cold_start,
                note="for information; ENVCTL_CACHE=off (the migrations run), entries kept",
            ),
            Variant(
                f"the migrator alone, {MIGRATIONS} files",
                tool_alone,
                note="for information: python bench/migrator.py on a fresh database",
            ),
        ]
        alternate(result, variants, ctx.plan.rounds, ctx.progress)
    ctx.cache.annotate(result)
    result.derived[f"warm: {MIGRATIONS} migrations / none"] = Derived(
        median_ratio(result.row(with_step), result.row(baseline)), note="target <= 1.2x"
    )
    return result


def medusa(ctx: Context) -> ScenarioResult:
    """`envctl run` of a Medusa-style runner: each test file migrates its own database, or
    finds it migrated because envctl made template1 the migrated database."""
    ws = ctx.ws
    files = ctx.plan.medusa_files
    result = ctx.begin(
        "medusa",
        f"Medusa-style suite: {files} test files, a database each, {MIGRATIONS} migrations",
    )
    folder = migration_folder(ws)
    plain = ws.profile("medusa-plain", preset="medusa")
    templated = ws.profile(
        "medusa-template1",
        preset="medusa",
        migrate=migrate_step(ws, folder),
        template1=True,
    )
    baseline = "baseline: the runner migrates each database"
    template1 = "template1: migrated by envctl, cached"
    native = "template1, --runtime native"
    per_file = "per test file"
    applied: dict[str, set[int]] = {}

    def suite(variant: str, profile: Path, *args: str) -> Callable[[], TrialResult]:
        ctx.cache.hits.setdefault(variant, [])

        def trial() -> dict[str, float]:
            ctx.cache.make_warm(profile, args)
            argv = [*envctl_argv(), "run", *args, str(profile), "--"]
            argv += [sys.executable, str(RUNNER), str(folder), "--files", str(files)]
            with stopwatch() as watch:
                done = run(argv, env=ws.env())
            ctx.cache.record(variant, done.stderr)
            summary = _summary(done.stdout + done.stderr)
            applied.setdefault(variant, set()).update(summary["applied"])
            files_seconds: list[dict[str, float]] = summary["seconds"]
            values = {"": watch.seconds}
            values[per_file] = statistics.mean(sum(phases.values()) for phases in files_seconds)
            for phase in PHASES:
                values[phase] = statistics.mean(phases[phase] for phases in files_seconds)
            return values

        return trial

    with server(ws, "medusa-target") as url:

        def migrator_once() -> float:
            with fresh_database(url) as target, stopwatch() as watch:
                migrate(target, folder)
            return watch.seconds

        variants = [
            Variant(baseline, suite(baseline, plain), keys=("", per_file, *PHASES)),
            Variant(
                template1,
                suite(template1, templated),
                baseline=baseline,
                keys=("", per_file, *PHASES),
            ),
            Variant(
                native,
                suite(native, templated, "--runtime", "native"),
                baseline=baseline,
                keys=("", per_file, *PHASES),
            ),
            Variant(
                f"the migrator, {MIGRATIONS} files, one fresh database",
                migrator_once,
                note="for reference: the per-file cost the baseline pays, in process",
            ),
        ]
        alternate(result, variants, ctx.plan.rounds, ctx.progress)
    ctx.cache.annotate(result)
    for variant, counts in applied.items():
        row = result.row(variant)
        if row is not None:  # a correct template1 leaves 0 to apply; the baseline all of them
            shown = ", ".join(map(str, sorted(counts)))
            row.note = "; ".join(filter(None, [row.note, f"migrations applied per file: {shown}"]))
    for name, variant in (("template1", template1), ("template1 native", native)):
        result.derived[f"{name} / baseline, whole run"] = Derived(
            median_ratio(result.row(variant), result.row(baseline))
        )
        result.derived[f"{name} / baseline, per test file"] = Derived(
            median_ratio(
                result.row(f"{variant} ({per_file})"), result.row(f"{baseline} ({per_file})")
            )
        )
    result.notes.append(
        "each row is a whole `envctl run P -- python bench/medusa_runner.py` (up, suite, down) "
        "from a warm cache; the per-test-file rows are the runner's own timing (means over "
        "the files) of the whole file and of each phase: CREATE DATABASE (a copy of template1), "
        "migrate + test, DROP DATABASE"
    )
    return result


def _summary(output: str) -> dict[str, Any]:
    """The runner's `medusa-runner: {json}` line."""
    for line in reversed(output.splitlines()):
        if line.startswith(SUMMARY):
            found: dict[str, Any] = json.loads(line[len(SUMMARY) :])
            return found
    raise RuntimeError("the runner printed no summary line")
