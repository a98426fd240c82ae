"""How fast a database is there: ready connection, CLI start, and `envctl run` around a suite."""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from collections.abc import Callable
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
from bench.scenarios.context import CACHE_OFF, Context, cold_and_warm, wall
from bench.workspace import ROOT, Workspace, docker, envctl_argv, run
from bench.workspace import wait_for_select_1 as select_1

QUICKSTART = ROOT / "profiles" / "quickstart.yaml"


def ready(ctx: Context) -> ScenarioResult:
    """Hand-written docker run, testcontainers and envctl (cold, warm, native) to SELECT 1."""
    ws = ctx.ws
    result = ctx.begin("ready", f"Ready connection: command start → SELECT 1 ({ws.image}, no seed)")
    docker_profile = ws.profile("ready")
    native_profile = ws.profile("ready-native")
    baseline = "docker run + psycopg poll (by hand)"
    variants = [
        Variant(baseline, docker_run_trial(ws), note="official-image contract, no settings"),
        Variant("testcontainers PostgresContainer", testcontainers_trial(ws), baseline=baseline),
        *cold_and_warm(ctx, "envctl up", docker_profile, baseline=baseline, first=True),
        *cold_and_warm(
            ctx,
            "envctl up --runtime native",
            native_profile,
            "--runtime",
            "native",
            baseline=baseline,
            note=f"host binaries for Postgres {ws.major}",
            first=True,
        ),
    ]
    alternate(result, variants, ctx.plan.rounds, ctx.progress)
    ctx.cache.annotate(result)
    result.notes.append(
        "envctl's rows include starting Python and importing envctl (the `cli` rows); "
        "testcontainers runs inside this already-started process, its library imported."
    )
    return result


def docker_run_trial(ws: Workspace) -> Callable[[], TrialResult]:
    """What a user writes by hand: docker run -d, docker port, poll with psycopg."""

    def trial() -> float:
        container = ""
        try:
            with stopwatch() as watch:
                container = docker(
                    "run",
                    "-d",
                    "--label",
                    ws.label(),
                    "-e",
                    "POSTGRES_PASSWORD=bench",
                    "-p",
                    "127.0.0.1::5432",
                    ws.image,
                )
                ws.track(container)
                port = docker("port", container, "5432/tcp").splitlines()[0].rsplit(":", 1)[1]
                select_1(f"postgresql://postgres:bench@127.0.0.1:{port}/postgres")
            return watch.seconds
        finally:
            if container:
                docker("rm", "-fv", container, check=False)
                ws.untrack(container)

    return trial


def testcontainers_trial(ws: Workspace) -> Callable[[], TrialResult]:
    """testcontainers' PostgresContainer (Ryuk off: nothing can be pulled) until SELECT 1."""

    def trial() -> float:
        postgres_container = _postgres_container_class()
        from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

        ws.sweep_labels.add(f"{LABEL_SESSION_ID}={SESSION_ID}")
        container = postgres_container(image=ws.image, driver=None)
        try:
            with stopwatch() as watch:
                container.start()
                select_1(container.get_connection_url())
            return watch.seconds
        finally:
            with contextlib.suppress(Exception):
                container.stop()

    return trial


def _postgres_container_class() -> Any:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.startswith("testcontainers.community"):
            from testcontainers.postgres import PostgresContainer  # before 4.12
        else:
            raise ModuleNotFoundError(
                "testcontainers is not installed: pip install -e '.[bench]'"
            ) from None
    return PostgresContainer


def cli(ctx: Context) -> ScenarioResult:
    """Wall time of `envctl --help` and `envctl validate`, and what the import spends time on."""
    ws = ctx.ws
    result = ctx.begin("cli", "CLI start (subprocess wall time, no Docker)")
    env = ws.env()
    python = sys.executable
    baseline = "python -c pass"
    validate = "envctl validate profiles/quickstart.yaml"
    variants = [
        Variant(baseline, lambda: wall([python, "-c", "pass"], env), note="the interpreter alone"),
        Variant(
            "python -c 'import provisioner.cli'",
            lambda: wall([python, "-c", "import provisioner.cli"], env),
            baseline=baseline,
        ),
        Variant("envctl --help", lambda: wall([*envctl_argv(), "--help"], env), baseline=baseline),
        Variant(
            validate,
            lambda: wall([*envctl_argv(), "validate", str(QUICKSTART)], env),
            baseline=baseline,
        ),
    ]
    alternate(result, variants, ctx.plan.cli_rounds, ctx.progress)
    result.derived["validate / --help"] = Derived(
        median_ratio(result.row(validate), result.row("envctl --help")), note="target <= 2x"
    )
    result.extra["importtime"] = import_offenders(env)
    return result


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def import_offenders(env: dict[str, str], runs: int = 3, top: int = 8) -> dict[str, Any]:
    """`python -X importtime -c "import provisioner.cli"`: the run with the median total."""
    parsed = []
    for _ in range(runs):
        done = run([sys.executable, "-X", "importtime", "-c", "import provisioner.cli"], env=env)
        parsed.append(_parse_importtime(done.stderr))
    parsed.sort(key=lambda item: item["total_ms"])
    chosen = parsed[len(parsed) // 2]
    packages: dict[str, float] = {}
    for name, self_ms, _ in chosen["modules"]:
        packages[name.split(".")[0]] = packages.get(name.split(".")[0], 0.0) + self_ms
    by_package = sorted(packages.items(), key=lambda item: -item[1])[:top]
    by_module = sorted(chosen["modules"], key=lambda item: -item[2])
    return {
        "total_ms": round(chosen["total_ms"], 1),
        "by_package_self_ms": {name: round(ms, 1) for name, ms in by_package},
        "slowest_modules_cumulative_ms": {
            name: round(cumulative, 1) for name, _, cumulative in by_module[:top]
        },
    }


def _parse_importtime(stderr: str) -> dict[str, Any]:
    modules: list[tuple[str, float, float]] = []
    total = 0.0
    started = False
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if not match:
            continue
        self_us, cumulative_us, indent, name = match.groups()
        # Everything before `provisioner` is the interpreter's own start-up (site, encodings).
        started = started or name.startswith("provisioner")
        if not started:
            continue
        modules.append((name, int(self_us) / 1000, int(cumulative_us) / 1000))
        if len(indent) <= 1:
            total += int(cumulative_us) / 1000
    return {"total_ms": total, "modules": modules}


def run_overhead(ctx: Context) -> ScenarioResult:
    """`envctl run P -- true` against `true` alone: what envctl adds around a suite."""
    ws = ctx.ws
    result = ctx.begin("run", f"envctl run of a trivial suite ({ws.image}, no seed)")
    profile = ws.profile("run-true")
    true = shutil.which("true") or "/bin/true"
    baseline = "true (the suite alone)"
    cold, warm = "envctl run P -- true, cold", "envctl run P -- true, warm"
    ctx.cache.hits[warm] = []

    def envctl_run(cached: bool) -> float:
        if cached:
            ctx.cache.make_warm(profile, ())
        else:
            ctx.cache.make_cold()
        argv = [*envctl_argv(), "run", str(profile), "--", true]
        with stopwatch() as watch:
            done = run(argv, env=ws.env() if cached else ws.env(**CACHE_OFF))
        if cached:
            ctx.cache.record(warm, done.stderr)
        return watch.seconds

    variants = [
        Variant(baseline, lambda: wall([true], ws.env()), note="reference: ~ms, so no ratios"),
        Variant(cold, lambda: envctl_run(False), note="up + suite + down; ENVCTL_CACHE=off"),
        Variant(warm, lambda: envctl_run(True)),
    ]
    alternate(result, variants, ctx.plan.rounds, ctx.progress)
    ctx.cache.annotate(result)
    suite = result.row(baseline)
    for name in (cold, warm):
        wrapped = result.row(name)
        overhead = None
        if suite and wrapped and suite.median is not None and wrapped.median is not None:
            overhead = wrapped.median - suite.median
        result.derived[f"envctl's overhead, {name.rsplit(' ', 1)[1]} (run - suite)"] = Derived(
            overhead, "s"
        )
    return result
