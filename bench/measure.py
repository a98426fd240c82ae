"""Alternating rounds, medians and ratios: the measuring part of the benchmarks, nothing else.

Variants of one scenario run interleaved (A, B, C, A, B, C, ...) so that a noisy moment on a
shared machine lands on every variant alike instead of on all the rounds of one of them.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# A trial returns one value, or several named values measured in the same trial (each becomes
# its own row, "variant (name)").
TrialResult = float | Mapping[str, float]
Progress = Callable[[str], None]


@dataclass
class Row:
    """One measured quantity: its samples, and which row of the scenario it is compared with."""

    name: str
    unit: str = "s"  # "s" (shown as s or ms), "MiB", or a plain count
    baseline: str | None = None  # name of the row the ratio divides by
    note: str = ""
    samples: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def to_dict(self, ratio: float | None) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.samples) if self.samples else None,
            "max": max(self.samples) if self.samples else None,
            "n": len(self.samples),
            "samples": self.samples,
            "baseline": self.baseline,
            "ratio": ratio,
            "note": self.note,
            "error": self.error,
        }


@dataclass(frozen=True)
class Derived:
    """A number computed from the medians: a ratio ("x") or a difference in seconds ("s")."""

    value: float | None
    unit: str = "x"
    note: str = ""

    def shown(self) -> str:
        if self.value is None:
            return "-"
        return f"{self.value:.2f}x" if self.unit == "x" else format_value(self.value, self.unit)


@dataclass
class ScenarioResult:
    """Everything one scenario measured, plus derived ratios and free-form facts."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    derived: dict[str, Derived] = field(default_factory=dict)  # e.g. "200 MB / 5 MB"
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def row(self, name: str) -> Row | None:
        return next((row for row in self.rows if row.name == name), None)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def ratio(self, row: Row) -> float | None:
        """`row`'s median over its baseline's median (None when either is missing)."""
        if row.baseline is None:
            return None
        return median_ratio(row, self.row(row.baseline))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "rows": [row.to_dict(self.ratio(row)) for row in self.rows],
            "derived": {name: dataclasses.asdict(value) for name, value in self.derived.items()},
            "notes": self.notes,
            "extra": self.extra,
            "error": self.error,
        }


def median_ratio(numerator: Row | None, denominator: Row | None) -> float | None:
    """median(numerator) / median(denominator), or None when either has no samples."""
    if numerator is None or denominator is None:
        return None
    top, bottom = numerator.median, denominator.median
    if top is None or bottom is None or bottom <= 0:
        return None
    return top / bottom


@dataclass
class Variant:
    """One contender of a scenario: a trial function that measures itself once per round.

    The trial does its own setup and teardown around the timed part (use `stopwatch`), so
    that teardown is never counted and always happens, also on failure. A trial that measures
    several things at once returns a mapping; `keys` names them ("" is the variant's own row,
    any other key the row "name (key)"), each compared with the same key of the baseline
    variant, and `units` gives a key a unit other than `unit`.
    """

    name: str
    trial: Callable[[], TrialResult]
    unit: str = "s"
    baseline: str | None = None  # the name of another variant
    note: str = ""
    keys: tuple[str, ...] = ("",)
    units: Mapping[str, str] = field(default_factory=dict)

    def row_name(self, key: str) -> str:
        return row_name(self.name, key)


def row_name(variant: str, key: str) -> str:
    """The row that holds `key` of `variant`."""
    return variant if key == "" else f"{variant} ({key})"


def alternate(
    result: ScenarioResult,
    variants: Sequence[Variant],
    rounds: int,
    progress: Progress,
) -> None:
    """Run `rounds` rounds of every variant in turn, appending samples to `result`'s rows.

    A variant that fails records its error once and sits out the remaining rounds; the others
    go on. KeyboardInterrupt and SystemExit are not caught.
    """
    by_name = {variant.name: variant for variant in variants}
    for variant in variants:
        for key in variant.keys:
            if result.row(variant.row_name(key)) is None:
                baseline = _baseline_row(by_name.get(variant.baseline or ""), key)
                note = variant.note if key == variant.keys[0] else ""
                unit = variant.units.get(key, variant.unit)
                result.add(Row(variant.row_name(key), unit, baseline, note))
    failed: set[str] = set()
    for index in range(rounds):
        for variant in variants:
            if variant.name in failed:
                continue
            first = result.row(variant.row_name(variant.keys[0]))
            assert first is not None
            try:
                value = variant.trial()
            except Exception as exc:
                first.error = one_line(exc)
                failed.add(variant.name)
                progress(f"{result.name} · {variant.name}: failed: {first.error}")
                continue
            values = value if isinstance(value, Mapping) else {"": value}
            shown = []
            for key, number in values.items():
                row = result.row(variant.row_name(key))
                if row is None:
                    unit = variant.units.get(key, variant.unit)
                    row = result.add(Row(variant.row_name(key), unit))
                row.samples.append(float(number))
                shown.append(f"{key + ' ' if key else ''}{format_value(float(number), row.unit)}")
            progress(
                f"{result.name} · {variant.name} · round {index + 1}/{rounds}: " + ", ".join(shown)
            )


def _baseline_row(baseline: Variant | None, key: str) -> str | None:
    """The baseline's row for `key`, or its main row when it does not measure `key`."""
    if baseline is None:
        return None
    return baseline.row_name(key if key in baseline.keys else baseline.keys[0])


class Stopwatch:
    """Elapsed seconds of the `with` block (perf_counter)."""

    seconds: float = 0.0


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """Time the block: `with stopwatch() as watch: ...; watch.seconds`."""
    watch = Stopwatch()
    started = time.perf_counter()
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - started


def format_value(value: float | None, unit: str) -> str:
    """Seconds as s or ms, MiB with one decimal, other units as they are."""
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.1f} ms"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:g} {unit}".strip()


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception, prefixed with its type when that helps."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
