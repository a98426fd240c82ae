"""GitHub Actions: masks, $GITHUB_ENV / $GITHUB_OUTPUT, log groups, annotations, matrices.

Everything here is inert unless GITHUB_ACTIONS=true, so the same commands work locally.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote


def active() -> bool:
    """Whether envctl runs as a step of a GitHub Actions job."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def mask(secret: str) -> None:
    """Tell the runner to hide `secret` (and its URL-encoded form) in every later log line."""
    if not active() or not secret:
        return
    for form in dict.fromkeys((secret, quote(secret, safe=""))):
        _command(f"::add-mask::{form}")


def export_env(variables: Mapping[str, str]) -> None:
    """Make `variables` visible to the job's later steps."""
    _append("GITHUB_ENV", variables)


def set_outputs(outputs: Mapping[str, str]) -> None:
    """Set the step's outputs."""
    _append("GITHUB_OUTPUT", outputs)


@contextlib.contextmanager
def group(title: str) -> Iterator[None]:
    """Fold the lines printed inside into one collapsible log group."""
    if not active():
        yield
        return
    _command(f"::group::{title}")
    try:
        yield
    finally:
        _command("::endgroup::")


def annotation(
    level: str, message: str, *, title: str, file: str | None = None, line: int | None = None
) -> None:
    """One `::error` or `::warning` annotation, placed at `file` (and `line`) when given."""
    if not active():
        return
    props = [f"title={_escape_property(title)}"]
    if file:
        props.insert(0, f"file={_escape_property(file)}")
        if line:
            props.insert(1, f"line={line}")
    _command(f"::{level} {','.join(props)}::{_escape_data(message)}")


def matrix(profiles: Iterable[Path], versions: Iterable[str] | None) -> dict[str, Any]:
    """A `strategy.matrix` with one entry per profile (and Postgres version, if given)."""
    from provisioner.profile import load_profile

    include: list[dict[str, str]] = []
    for path in profiles:
        profile = load_profile(path)
        for version in versions or [profile.postgres.version]:
            include.append(
                {
                    "name": f"{profile.name} (Postgres {version})",
                    "profile": str(path),
                    "postgres-version": str(version),
                }
            )
    return {"include": include}


def _append(variable: str, values: Mapping[str, str]) -> None:
    target = os.environ.get(variable)
    if not active() or not target:
        return
    with Path(target).open("a", encoding="utf-8") as handle:
        for name, value in values.items():
            # The heredoc form is safe for any value, newlines included.
            delimiter = f"ENVCTL_{secrets.token_hex(8)}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def _command(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def to_json(data: Mapping[str, Any]) -> str:
    """Compact JSON, as `fromJSON()` in a workflow expects it."""
    return json.dumps(data, separators=(",", ":"))
