"""The benchmark's output: one rich table with ratios next to the baselines, and a JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.measure import ScenarioResult, format_value


def print_results(
    console: Console, results: Sequence[ScenarioResult], meta: dict[str, Any]
) -> None:
    """The table of every scenario, then derived ratios and notes."""
    table = Table(
        title="envctl benchmarks: medians of alternating rounds"
        f" ({'quick' if meta['plan']['quick'] else 'full'} run, n = samples per row)",
        caption="ratio = median / the median of the row marked 'baseline' in the same scenario",
        show_lines=False,
    )
    table.add_column("scenario", style="bold")
    table.add_column("variant")
    table.add_column("median", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("min … max", justify="right", style="dim")
    table.add_column("n", justify="right", style="dim")
    table.add_column("note", style="dim", overflow="fold")
    for index, result in enumerate(results):
        if index:
            table.add_section()
        baselines = {row.baseline for row in result.rows if row.baseline}
        first = True
        for row in result.rows:
            ratio = result.ratio(row)
            if row.name in baselines:
                ratio_text = "baseline"
            elif ratio is None:
                ratio_text = ""
            else:
                ratio_text = f"{ratio:.2f}x"
            if row.error:
                median_text = "[red]error[/red]"
                note = escape(row.error)
            else:
                median_text = format_value(row.median, row.unit)
                note = escape(row.note)
            spread = (
                f"{format_value(min(row.samples), row.unit)} … "
                f"{format_value(max(row.samples), row.unit)}"
                if row.samples
                else ""
            )
            table.add_row(
                result.name if first else "",
                escape(row.name),
                median_text,
                ratio_text,
                spread,
                str(len(row.samples)),
                note,
            )
            first = False
        if result.error:
            name = "" if result.rows else result.name
            table.add_row(name, "[red]scenario stopped[/red]", "", "", "", "", escape(result.error))
        for name, derived in result.derived.items():
            note = "derived" + (f": {derived.note}" if derived.note else "")
            shown_name = f"[italic]{escape(name)}[/italic]"
            table.add_row("", shown_name, "", derived.shown(), "", "", escape(note))
    console.print(table)
    if meta.get("interrupted"):
        console.print("[yellow]interrupted: the results above are partial[/yellow]")
    for result in results:
        for note in result.notes:
            console.print(f"[bold]{result.name}[/bold]: {escape(note)}", highlight=False)
        importtime = result.extra.get("importtime")
        if importtime:
            packages = ", ".join(
                f"{name} {ms:.0f} ms" for name, ms in importtime["by_package_self_ms"].items()
            )
            console.print(
                f"[bold]{result.name}[/bold]: import provisioner.cli takes "
                f"{importtime['total_ms']:.0f} ms; by package (self time): {packages}",
                highlight=False,
            )
    console.print(
        f"machine: {meta['machine']['cpus']} CPUs, {meta['machine']['platform']}; "
        f"Docker {meta['docker']}; image {meta['image']}; envctl cache: "
        f"{'yes' if meta['cache_supported'] else 'not in this build'}; "
        f"cold starts: {meta.get('cold_starts', '')}",
        highlight=False,
    )


def write_json(path: Path, results: Sequence[ScenarioResult], meta: dict[str, Any]) -> None:
    """Everything measured, every sample, as JSON (for comparing runs over time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "scenarios": [result.to_dict() for result in results]}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
