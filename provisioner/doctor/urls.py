"""A postgres URL's parts as the doctor reads them, tolerant of every dialect's query
parameters; a URL that is not one is named as such."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def _url_problem(parts: Mapping[str, Any]) -> str | None:
    return (
        "not a URL of the form postgresql://user:password@host:port/database"
        if parts.get("invalid")
        else None
    )


def _split_url(url: str) -> dict[str, Any]:
    """A postgres URL's parts, tolerant of every dialect's query parameters."""
    if not url:
        return {}
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return {"invalid": True}
    query = {key: vals[-1] for key, vals in parse_qs(parts.query, keep_blank_values=True).items()}
    return {
        "scheme": parts.scheme,
        "host": unquote(parts.hostname or ""),
        "port": str(port) if port else "",
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "dbname": unquote(parts.path.lstrip("/")),
        "query": query,
    }
