"""What every scenario shares: the plan (how much to measure), the cache switch, common trials.

Every timed part runs from the moment a command (or call) starts until a psycopg `SELECT 1`
through the URL it produced succeeds; teardown happens after the stopwatch stops, in a
`finally`, so a failure never leaves anything behind and never counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Progress, ScenarioResult, TrialResult, Variant, stopwatch
from bench.workspace import Workspace, run
from bench.workspace import wait_for_select_1 as select_1

CACHE_OFF = {"ENVCTL_CACHE": "off"}
CACHE_ON = {"ENVCTL_CACHE": "on"}  # keep an entry at the first start


@dataclass(frozen=True)
class Plan:
    """How much to measure: rounds, sizes, counts (smaller with --quick)."""

    quick: bool
    rounds: int
    seed_sizes: tuple[int, ...]
    reset_size: int
    clones: int
    cli_rounds: int
    scale_levels: tuple[int, ...]
    scale_rounds: int
    medusa_files: int  # test files of the Medusa-style suite, each its own database

    @classmethod
    def make(cls, quick: bool, rounds: int | None) -> Plan:
        if quick:
            base = rounds or 2
            return cls(True, base, (5,), 5, 8, max(5, base * 3), (1, 5), max(1, base // 2), 4)
        base = rounds or 5
        return cls(
            False,
            base,
            (5, 50, 200),
            50,
            20,
            max(5, base * 3),
            (1, 5, 10, 20),
            max(1, base // 2),
            10,
        )


@dataclass
class Context:
    """What every scenario gets: the workspace, the plan, progress output, the cache's state."""

    ws: Workspace
    plan: Plan
    progress: Progress
    prune_all: bool = False
    cache: CacheControl = field(init=False)
    # Every scenario's result as soon as it starts, so that Ctrl-C still reports what was done.
    results: list[ScenarioResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cache = CacheControl(self.ws, self.progress, self.prune_all)

    def begin(self, name: str, title: str) -> ScenarioResult:
        """A new scenario's (empty) result, already part of the report."""
        result = ScenarioResult(name, title)
        self.results.append(result)
        return result


class CacheControl:
    """envctl's cache of initialized and seeded clusters, when this build has one.

    A cold start runs with ENVCTL_CACHE=off (no lookup, no store) after the cache entries are
    emptied: by default only the entries this run made (labelled with a profile under the
    workspace), so that other people's test runs on a shared engine keep theirs; with
    `prune_all`, by `envctl cache prune --all`. A warm start follows one untimed up/down of
    the same profile since the last emptying, and counts whether envctl says it started
    "from the cache".
    """

    def __init__(self, ws: Workspace, progress: Progress, prune_all: bool = False) -> None:
        self.ws = ws
        self.progress = progress
        self.supported = ws.has_command("cache")
        self.prune_all = prune_all and self.supported
        self.hits: dict[str, list[bool]] = {}
        self._warm: set[tuple[Path, tuple[str, ...]]] = set()

    @property
    def how_emptied(self) -> str:
        if not self.supported:
            return "no cache in this build"
        return "envctl cache prune --all" if self.prune_all else "this run's own entries removed"

    def make_cold(self) -> None:
        if not self.supported:
            return
        if self.prune_all:
            self.ws.envctl("cache", "prune", "--all")
        else:
            self.ws.remove_cache_entries()
        self._warm.clear()

    def make_warm(self, profile: Path, args: tuple[str, ...]) -> None:
        if not self.supported or (profile, args) in self._warm:
            return
        self.progress(f"cache · warming {profile.name} (untimed up/down)")
        try:
            self.ws.up(profile, *args, extra_env=CACHE_ON)
        finally:
            self.ws.down(profile)
        self._warm.add((profile, args))

    def record(self, variant: str, output: str, expect_hit: bool = True) -> None:
        """Count whether envctl said it started "from the cache"; say so when that was not
        what was expected."""
        hit = "from the cache" in output
        self.hits.setdefault(variant, []).append(hit)
        if self.supported and hit != expect_hit:
            said = "not served from the cache" if expect_hit else "served from the cache"
            self.progress(f"{variant}: {said} this time")

    def note(self, variant: str) -> str:
        """The warm row's note: how many of its starts envctl served from the cache."""
        if not self.supported:
            return "no `envctl cache` in this build: same as cold"
        hits = self.hits.get(variant, [])
        return f"served from the cache {sum(hits)}/{len(hits)} times"

    def annotate(self, result: ScenarioResult) -> None:
        """Put the hit counts into the notes of `result`'s warm and first-run rows."""
        for variant in self.hits:
            row = result.row(variant)
            if row is None:
                continue
            said = row.note if row.note.startswith("cache on") else ""  # the first runs' own
            row.note = "; ".join(filter(None, [said, self.note(variant)]))


# -- shared trials ---------------------------------------------------------------------------


# What each kind of start runs with, after which preparation: (ENVCTL_CACHE, emptied first).
KINDS = {
    "cold": ("off", True),  # no cache at all
    "first run": (None, True),  # the default, nothing cached or remembered: keeps nothing
    "first run, keeping": ("on", True),  # the start that keeps its entry (default: the second)
    "warm": (None, False),  # a hit
}


def envctl_up_trial(
    ctx: Context, variant: str, profile: Path, *args: str, kind: str
) -> Callable[[], TrialResult]:
    """`envctl up ARGS PROFILE` until SELECT 1 through the env file's DATABASE_URL, as a start
    of one of the `KINDS`."""
    setting, emptied = KINDS[kind]
    if kind != "cold":
        ctx.cache.hits.setdefault(variant, [])

    def trial() -> float:
        if emptied:
            ctx.cache.make_cold()
        else:
            ctx.cache.make_warm(profile, args)
        extra_env = {"ENVCTL_CACHE": setting} if setting else None
        try:
            with stopwatch() as watch:
                done = ctx.ws.up(profile, *args, extra_env=extra_env)
                select_1(ctx.ws.url_of(profile))
            if kind != "cold":
                ctx.cache.record(variant, done.stderr, expect_hit=kind == "warm")
            return watch.seconds
        finally:
            ctx.ws.down(profile)

    return trial


def cold_and_warm(
    ctx: Context,
    name: str,
    profile: Path,
    *args: str,
    baseline: str | None = None,
    note: str = "",
    first: bool = False,
) -> list[Variant]:
    """The variants "NAME, cold" and "NAME, warm" of `envctl up ARGS PROFILE`; with `first`,
    "NAME, first run" and "NAME, first run, keeping" between them."""
    emptied = ctx.cache.how_emptied
    notes = {
        "cold": f"ENVCTL_CACHE=off; {emptied}" + (f"; {note}" if note else ""),
        "first run": f"cache on, {emptied}, no earlier start: keeps nothing",
        "first run, keeping": f"cache on (ENVCTL_CACHE=on), {emptied}: keeps its entry",
        "warm": ctx.cache.note(f"{name}, warm"),
    }
    kinds = list(KINDS) if first else ["cold", "warm"]
    return [
        Variant(
            f"{name}, {kind}",
            envctl_up_trial(ctx, f"{name}, {kind}", profile, *args, kind=kind),
            baseline=baseline or (None if kind == "cold" else f"{name}, cold"),
            note=notes[kind],
        )
        for kind in kinds
    ]


def wall(argv: list[str], env: dict[str, str], check: bool = True) -> float:
    """Wall time of one subprocess."""
    with stopwatch() as watch:
        run(argv, env=env, check=check)
    return watch.seconds
