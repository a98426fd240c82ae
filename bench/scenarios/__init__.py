"""The benchmark scenarios, by name: each a function of the run's context returning its results."""

from __future__ import annotations

from collections.abc import Callable

from bench.measure import ScenarioResult
from bench.scenarios.context import Context, Plan
from bench.scenarios.formats import formats
from bench.scenarios.migrations import medusa, migrate_scenario
from bench.scenarios.scale import scale
from bench.scenarios.seeded import clone, reset, seeded
from bench.scenarios.startup import cli, ready, run_overhead

SCENARIOS: dict[str, Callable[[Context], ScenarioResult]] = {
    "cli": cli,
    "ready": ready,
    "run": run_overhead,
    "seeded": seeded,
    "formats": formats,
    "reset": reset,
    "clone": clone,
    "migrate": migrate_scenario,
    "medusa": medusa,
    "scale": scale,
}

__all__ = ["SCENARIOS", "Context", "Plan"]
