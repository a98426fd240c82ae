"""Whether the file is consistent: where DATABASE_URL, PG*, DB_* and POSTGRES_* name different
servers or settings, compared fact by fact."""

from __future__ import annotations

from collections.abc import Mapping

from provisioner.doctor.urls import _split_url

_FAMILIES: dict[str, dict[str, str]] = {
    "PG*": {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "database": "PGDATABASE",
        "sslmode": "PGSSLMODE",
    },
    "DB_*": {
        "host": "DB_HOST",
        "port": "DB_PORT",
        "user": "DB_USERNAME",
        "password": "DB_PASSWORD",
    },
    "POSTGRES_*": {
        "host": "POSTGRES_HOST",
        "port": "POSTGRES_PORT",
        "user": "POSTGRES_USER",
        "password": "POSTGRES_PASSWORD",
        "database": "POSTGRES_DB",
    },
}
_FIELDS = ("host", "port", "user", "password", "database", "sslmode")


def _url_facts(url: str) -> dict[str, str]:
    parts = _split_url(url)
    if not parts or parts.get("invalid"):
        return {}
    query = parts["query"]
    facts = {
        "host": query.get("host") or parts["host"],
        "port": parts["port"],
        "user": parts["user"],
        "password": parts["password"],
        "database": parts["dbname"],
    }
    mode = query.get("sslmode", "")
    if mode and query.keys() & {"schema", "sslaccept"}:  # Prisma's dialect
        mode = f"prisma:{'verify' if query.get('sslaccept') == 'strict' else mode}"
    facts["sslmode"] = mode
    return {key: value for key, value in facts.items() if value}


def _ssl_class(mode: str) -> str:
    mode = mode.removeprefix("prisma:")
    return "verify" if mode.startswith("verify") else mode


def _same(fieldname: str, a: str, b: str) -> bool:
    if fieldname != "sslmode":
        return a == b
    if a.startswith("prisma:") or b.startswith("prisma:"):
        return _ssl_class(a) == _ssl_class(b)
    return a == b


def disagreements(values: Mapping[str, str]) -> list[str]:
    """Where DATABASE_URL, PG*, DB_* and POSTGRES_* name different servers or settings."""
    seen: dict[str, list[tuple[str, str]]] = {name: [] for name in _FIELDS}
    url_facts = _url_facts(values.get("DATABASE_URL", ""))
    for fieldname, value in url_facts.items():
        seen[fieldname].append(("DATABASE_URL", value))
    for family in _FAMILIES.values():
        for fieldname, variable in family.items():
            if values.get(variable):
                seen[fieldname].append((variable, values[variable]))
    problems = []
    for fieldname, found in seen.items():
        first = found[0][1] if found else ""
        if all(_same(fieldname, first, value) for _, value in found[1:]):
            continue
        if fieldname == "password":
            problems.append(f"password: {', '.join(name for name, _ in found)} differ")
        else:
            said = ", ".join(f"{name} {value.removeprefix('prisma:')}" for name, value in found)
            problems.append(f"{fieldname}: {said}")
    return problems
