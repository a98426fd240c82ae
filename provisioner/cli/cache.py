"""`envctl cache ls|prune`: the cache of initialized and seeded clusters."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

from provisioner.cli.app import (
    app,
    reports_errors,
)
from provisioner.errors import (
    UsageError,
)
from provisioner.terminal import say

if TYPE_CHECKING:
    pass


cache_app = typer.Typer(help="The cache of initialized and seeded clusters.", no_args_is_help=True)


app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
@reports_errors
def cache_ls(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """List cache entries: key, profile, size, last use."""
    from provisioner.cache.entries import list_entries
    from provisioner.runtime.select import available_runtimes

    entries = list_entries(available_runtimes())
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        say("the cache is empty")
    for entry in entries:
        used = entry["last_used"]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(used)) if used else "-"
        key = entry["key"][:16] if entry["tagged"] else f"{entry['key'][:16]} (untagged)"
        size = entry["size"] / 1e6
        typer.echo(
            f"{key}  {entry['runtime']:6}  {size:8.1f} MB  last used {when}  {entry['profile']}"
        )


@cache_app.command("prune")
@reports_errors
def cache_prune(
    everything: Annotated[bool, typer.Option("--all", help="Remove every entry.")] = False,
    max_size: Annotated[
        str | None, typer.Option("--max-size", help="Keep at most this much, e.g. 2GB.")
    ] = None,
) -> None:
    """Remove entries: all, or least recently used first past a size limit."""
    from provisioner.cache.entries import prune
    from provisioner.runtime.select import available_runtimes

    limit = _size(max_size) if max_size else None
    removed = prune(available_runtimes(), everything=everything, max_bytes=limit)
    for entry in removed:
        say(f"removed {entry['key'][:16]} ({entry['size'] / 1e6:.1f} MB)")
    say(f"removed {len(removed)} cache entr{'y' if len(removed) == 1 else 'ies'}")


def _size(text: str) -> int:
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"--max-size {text} is not a size", hint="e.g. 500MB or 2GB")
    factor = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[match.group(2).upper()]
    return int(float(match.group(1)) * factor)
