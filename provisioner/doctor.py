"""`envctl doctor`: why a client cannot reach its test database, with evidence and the fix.

Every check reads what a client reads: the env file (by dotenv's rules), the profile, the Docker
engine and the running environment. Connections are made with the values each client takes
from the file, including the defaults it falls back to for what the file leaves out, as
docs/CLIENTS.md records them. Nothing here prints; passwords never appear in a check.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from provisioner.connection import Connection, hide_secrets
from provisioner.envfile import render_env
from provisioner.errors import EnvctlError, first_line
from provisioner.ports import port_free
from provisioner.presets import PRESETS

if TYPE_CHECKING:
    from provisioner.environments import Environment
    from provisioner.profile import Profile

CONNECT_TIMEOUT = 5
MASK = "****"
CREATEDB_QUERY = "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, whether it passed, what was seen, and the fix."""

    name: str
    ok: bool
    evidence: str
    fix: str | None = None


def checks_to_json(checks: Iterable[Check]) -> list[dict[str, Any]]:
    """Checks as JSON-friendly dicts (name, ok, evidence, fix)."""
    return [asdict(check) for check in checks]


def describe_presets() -> dict[str, dict[str, str]]:
    """Each preset's variables and the template each is rendered from, e.g. DB_PORT: {port}."""
    return {name: dict(variables) for name, variables in PRESETS.items()}


# --- reading env files -------------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """Variables of a dotenv file as python-dotenv (what Python apps load) reads them."""
    import io

    from dotenv import dotenv_values

    return {key: value or "" for key, value in dotenv_values(stream=io.StringIO(text)).items()}


# --- what each client makes of the file ---------------------------------------------------

_PG_KEYWORDS = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGUSER": "user",
    "PGPASSWORD": "password",
    "PGDATABASE": "dbname",
    "PGSSLMODE": "sslmode",
    "PGSSLROOTCERT": "sslrootcert",
    "PGSSLCERT": "sslcert",
    "PGSSLKEY": "sslkey",
}
_NODE_SSL_MODES = {"prefer", "require", "verify-ca", "verify-full"}


@dataclass(frozen=True)
class ClientView:
    """The connection one client makes from the file: libpq keywords and where each came from.

    `origin` maps a keyword to the variable that set it, or to the variable that *would* set
    it followed by " (missing)" when the client fell back to its default.
    """

    kind: str
    label: str
    params: dict[str, str]
    origin: dict[str, str]
    problem: str | None = None
    needs_createdb: bool = False
    notes: tuple[str, ...] = ()


def _libpq_env(values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    params: dict[str, str] = {}
    origin: dict[str, str] = {}
    for variable, keyword in _PG_KEYWORDS.items():
        origin[keyword] = f"{variable} (missing)"
        if values.get(variable):
            params[keyword] = values[variable]
            origin[keyword] = variable
    return params, origin


def libpq_env_view(values: Mapping[str, str]) -> ClientView:
    """PG* variables as libpq reads them (psql, psycopg, pg_dump, Rails' pg adapter)."""
    params, origin = _libpq_env(values)
    return ClientView("libpq-env", "PG* variables as libpq reads them", params, origin)


def libpq_url_view(values: Mapping[str, str]) -> ClientView:
    """DATABASE_URL as libpq parses it; what it leaves out comes from PG* variables."""
    from psycopg.conninfo import conninfo_to_dict

    params, origin = _libpq_env(values)
    label = "DATABASE_URL as libpq reads it (psycopg, dj-database-url, Rails)"
    try:
        parsed = conninfo_to_dict(values.get("DATABASE_URL", ""))
    except Exception as exc:  # psycopg.ProgrammingError: libpq's own parse error
        return ClientView("libpq-url", label, params, origin, problem=first_line(str(exc)))
    for keyword, value in parsed.items():
        params[keyword] = str(value)
        origin[keyword] = "DATABASE_URL"
    return ClientView("libpq-url", label, params, origin)


def sqlalchemy_view(values: Mapping[str, str]) -> ClientView:
    """DATABASE_URL as SQLAlchemy with psycopg reads it: a libpq URL under another scheme."""
    url = values.get("DATABASE_URL", "")
    scheme, _, rest = url.partition("://")
    view = libpq_url_view({**values, "DATABASE_URL": f"postgresql://{rest}" if rest else url})
    label = f"DATABASE_URL as SQLAlchemy reads it ({scheme or 'postgresql+psycopg'})"
    return replace(view, kind="sqlalchemy-url", label=label)


def asyncpg_view(values: Mapping[str, str]) -> ClientView:
    """DATABASE_URL as SQLAlchemy with asyncpg reads it: `ssl=` in the URL, certificates from
    PGSSL* (asyncpg's own defaults: sslmode prefer, ~/.postgresql/root.crt)."""
    parts = _split_url(values.get("DATABASE_URL", ""))
    query = parts.get("query", {})
    params = {
        "host": parts.get("host") or "localhost",
        "port": parts.get("port") or "5432",
        "user": parts.get("user", ""),
        "password": parts.get("password", ""),
        "dbname": parts.get("dbname") or parts.get("user", ""),
    }
    origin = dict.fromkeys(params, "DATABASE_URL")
    problem = _url_problem(parts)
    if "sslmode" in query:
        problem = problem or "asyncpg takes no sslmode= in the URL (a TypeError): use ssl="
    mode = query.get("ssl") or values.get("PGSSLMODE") or "prefer"
    params["sslmode"] = mode
    origin["sslmode"] = "DATABASE_URL" if "ssl" in query else "PGSSLMODE"
    for keyword, variable in (
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
    ):
        if values.get(variable):
            params[keyword], origin[keyword] = values[variable], variable
    return ClientView(
        "asyncpg-url",
        "DATABASE_URL as SQLAlchemy with asyncpg reads it",
        params,
        origin,
        problem=problem,
    )


def _node_ssl(mode: str | None, compat: bool) -> str:
    """node-postgres' SSL behaviour for an sslmode, as the libpq mode that behaves alike."""
    if mode == "disable":
        return "disable"
    if mode == "no-verify":
        return "require"
    if compat and mode in ("prefer", "require"):
        return "require"  # rejectUnauthorized: false, and no fallback to plain
    if compat and mode == "verify-ca":
        return "verify-ca"
    return "verify-full"


def _node_ca(params: dict[str, str], origin: dict[str, str], values: Mapping[str, str]) -> None:
    if params.get("sslmode") in ("verify-ca", "verify-full") and "sslrootcert" not in params:
        # Node trusts its own CA store plus NODE_EXTRA_CA_CERTS; libpq's "system" is the former.
        extra = values.get("NODE_EXTRA_CA_CERTS")
        params["sslrootcert"] = extra or "system"
        origin["sslrootcert"] = "NODE_EXTRA_CA_CERTS" if extra else "NODE_EXTRA_CA_CERTS (missing)"
        if not extra:
            params["sslmode"] = "verify-full"  # libpq allows "system" with verify-full only


def _node_env_ssl(values: Mapping[str, str]) -> tuple[str, str]:
    mode = values.get("PGSSLMODE") or None
    if mode is None:
        return "disable", "PGSSLMODE (missing)"
    if mode in _NODE_SSL_MODES or mode in ("disable", "no-verify"):
        return _node_ssl(mode, compat=False), "PGSSLMODE"
    return "disable", "PGSSLMODE"


def node_url_view(values: Mapping[str, str]) -> ClientView:
    """DATABASE_URL as node-postgres 8 reads it (pg-connection-string, no libpq compat)."""
    label = "DATABASE_URL as node-postgres reads it (the Medusa app, Prisma Client 7)"
    parts = _split_url(values.get("DATABASE_URL", ""))
    params: dict[str, str] = {}
    origin: dict[str, str] = {}
    for keyword, variable, default in (
        ("host", "PGHOST", "localhost"),
        ("port", "PGPORT", "5432"),
        ("user", "PGUSER", None),
        ("password", "PGPASSWORD", None),
        ("dbname", "PGDATABASE", None),
    ):
        if parts.get(keyword):
            params[keyword], origin[keyword] = parts[keyword], "DATABASE_URL"
        elif values.get(variable):
            params[keyword], origin[keyword] = values[variable], variable
        elif default is not None:
            params[keyword], origin[keyword] = default, f"DATABASE_URL {keyword} (missing)"
    query = parts.get("query", {})
    if query.keys() & {"sslmode", "sslrootcert", "sslcert", "sslkey"}:
        compat = query.get("uselibpqcompat") == "true"
        params["sslmode"] = _node_ssl(query.get("sslmode"), compat)
        origin["sslmode"] = "DATABASE_URL"
        for key in ("sslrootcert", "sslcert", "sslkey"):
            if query.get(key):
                params[key], origin[key] = query[key], "DATABASE_URL"
    else:
        params["sslmode"], origin["sslmode"] = _node_env_ssl(values)
    _node_ca(params, origin, values)
    return ClientView("node-url", label, params, origin, problem=_url_problem(parts))


def medusa_view(values: Mapping[str, str]) -> ClientView:
    """DB_* as @medusajs/test-utils reads them; SSL from PGSSLMODE through node-postgres."""
    params: dict[str, str] = {}
    origin: dict[str, str] = {}
    for keyword, variable, default in (
        ("host", "DB_HOST", "localhost"),
        ("port", "DB_PORT", "5432"),
        ("user", "DB_USERNAME", "postgres"),
        ("password", "DB_PASSWORD", ""),
        ("dbname", "DB_WAITINGROOM_DATABASE", "postgres"),
    ):
        value = values.get(variable)
        if value:
            params[keyword], origin[keyword] = value, variable
        else:
            params[keyword], origin[keyword] = default, f"{variable} (missing)"
    params["sslmode"], origin["sslmode"] = _node_env_ssl(values)
    _node_ca(params, origin, values)
    return ClientView(
        "medusa", "DB_* as Medusa's test runner reads them", params, origin, needs_createdb=True
    )


def prisma_view(values: Mapping[str, str]) -> ClientView:
    """DATABASE_URL as Prisma's schema engine (quaint) reads it: its own dialect."""
    label = "DATABASE_URL as Prisma's schema engine reads it (prisma migrate, db push)"
    parts = _split_url(values.get("DATABASE_URL", ""))
    query = parts.get("query", {})
    params = {
        "host": query.get("host") or parts.get("host") or "localhost",
        "port": parts.get("port") or "5432",
        "user": parts.get("user", ""),
        "password": parts.get("password", ""),
        "dbname": parts.get("dbname") or "postgres",
    }
    origin = dict.fromkeys(params, "DATABASE_URL")
    mode = query.get("sslmode", "prefer")
    if mode not in ("disable", "prefer", "require"):
        mode = "prefer"  # quaint: "Unsupported SSL mode, defaulting to `prefer`"
    notes: tuple[str, ...] = ()
    if query.get("sslmode") and query["sslmode"] != mode:
        notes = (f"Prisma reads sslmode={query['sslmode']} as prefer",)
    if query.get("sslaccept") == "strict" and mode != "disable":
        # native-tls checks chain and host name, against sslcert (Prisma's CA) or the system.
        params["sslmode"] = "verify-full"
        params["sslrootcert"] = query.get("sslcert") or "system"
    else:
        params["sslmode"] = mode  # sslaccept=accept_invalid_certs (the default): no check
    origin["sslmode"] = origin["sslrootcert"] = "DATABASE_URL"
    return ClientView("prisma-url", label, params, origin, problem=_url_problem(parts), notes=notes)


def postgres_vars_view(values: Mapping[str, str]) -> ClientView:
    """POSTGRES_* as Django settings laid out like cookiecutter-django read them."""
    params, origin = _libpq_env(values)
    params = {k: v for k, v in params.items() if k.startswith("ssl")}
    for keyword, variable, default in (
        ("host", "POSTGRES_HOST", "postgres"),
        ("port", "POSTGRES_PORT", "5432"),
        ("user", "POSTGRES_USER", None),
        ("password", "POSTGRES_PASSWORD", None),
        ("dbname", "POSTGRES_DB", None),
    ):
        value = values.get(variable)
        if value:
            params[keyword], origin[keyword] = value, variable
        elif default is not None:
            params[keyword], origin[keyword] = default, f"{variable} (missing)"
        else:
            origin[keyword] = f"{variable} (missing)"
    return ClientView(
        "postgres-vars",
        "POSTGRES_* as Django settings read them (cookiecutter-django layout)",
        params,
        origin,
        needs_createdb=True,  # Django's test runner creates test_<NAME>
    )


def jdbc_view(values: Mapping[str, str]) -> ClientView:
    """SPRING_DATASOURCE_* or JDBC_DATABASE_* as pgjdbc reads them: host, port and database
    from the URL (values URL-decoded), credentials beside it; sslmode default `prefer`."""
    prefix = "SPRING_DATASOURCE" if values.get("SPRING_DATASOURCE_URL") else "JDBC_DATABASE"
    variable = f"{prefix}_URL"
    url = values.get(variable, "")
    label = f"{variable} as pgjdbc reads it (Spring, JDBC)"
    parts = _split_url(url.removeprefix("jdbc:")) if url.startswith("jdbc:postgresql:") else {}
    query = parts.get("query", {})
    params = {
        "host": parts.get("host") or "localhost",
        "port": parts.get("port") or "5432",
        "dbname": parts.get("dbname", ""),
        "user": values.get(f"{prefix}_USERNAME") or query.get("user", ""),
        "password": values.get(f"{prefix}_PASSWORD") or query.get("password", ""),
        "sslmode": query.get("sslmode", "prefer"),
    }
    origin = dict.fromkeys(params, variable)
    origin["user"], origin["password"] = f"{prefix}_USERNAME", f"{prefix}_PASSWORD"
    if "sslmode" not in query:
        origin["sslmode"] = f"{variable} (missing)"
    if "sslrootcert" in query:
        params["sslrootcert"], origin["sslrootcert"] = query["sslrootcert"], variable
    problem = None if parts else f"{variable} is not a jdbc:postgresql:// URL"
    return ClientView("jdbc", label, params, origin, problem=problem)


def npgsql_view(values: Mapping[str, str]) -> ClientView:
    """ConnectionStrings__Default as Npgsql reads it (keywords case- and space-insensitive)."""
    variable = "ConnectionStrings__Default"
    label = f"{variable} as Npgsql reads it (.NET)"
    try:
        pairs = parse_npgsql(values.get(variable, ""))
    except ValueError as exc:
        return ClientView("npgsql", label, {}, {}, problem=str(exc))
    params = {keyword: pairs[key] for key, keyword in _NPGSQL_KEYWORDS.items() if key in pairs}
    params.setdefault("port", "5432")
    mode = pairs.get("sslmode", "Prefer").lower()
    params["sslmode"] = {"verifyca": "verify-ca", "verifyfull": "verify-full"}.get(mode, mode)
    origin = dict.fromkeys(params, variable)
    return ClientView("npgsql", label, params, origin)


# Npgsql's keywords (and synonyms) with blanks removed and lower-cased, as libpq keywords.
_NPGSQL_KEYWORDS = {
    "host": "host",
    "server": "host",
    "port": "port",
    "database": "dbname",
    "db": "dbname",
    "username": "user",
    "userid": "user",
    "user": "user",
    "password": "password",
    "psw": "password",
    "pwd": "password",
    "rootcertificate": "sslrootcert",
}


def parse_npgsql(text: str) -> dict[str, str]:
    """`key=value;...` as .NET's DbConnectionStringBuilder splits it: values may be quoted
    with ' or " (the quote doubled inside), `==` in a key is a literal `=`; keys are returned
    lower-cased without blanks, as Npgsql matches them."""
    pairs: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and (text[i].isspace() or text[i] == ";"):
            i += 1
        if i >= n:
            break
        key_start = i
        while i < n and not (text[i] == "=" and text[i + 1 : i + 2] != "="):
            i += 2 if text[i] == "=" else 1
        if i >= n:
            raise ValueError(f"connection string: {text[key_start:].strip()!r} has no value")
        key = text[key_start:i].replace("==", "=")
        i += 1
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] in "'\"":
            quote_char, i, chars = text[i], i + 1, []
            while True:
                if i >= n:
                    raise ValueError(f"connection string: {key.strip()}: unclosed quote")
                if text[i] == quote_char:
                    if text[i + 1 : i + 2] == quote_char:
                        chars.append(quote_char)
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            value = "".join(chars)
            while i < n and text[i].isspace():
                i += 1
            if i < n and text[i] != ";":
                raise ValueError(f"connection string: {key.strip()}: text after a quoted value")
        else:
            end = text.find(";", i)
            end = n if end < 0 else end
            value, i = text[i:end].strip(), end
        pairs["".join(key.split()).lower()] = value
    return pairs


_VIEWS = {
    "libpq-url": libpq_url_view,
    "libpq-env": libpq_env_view,
    "node-url": node_url_view,
    "medusa": medusa_view,
    "prisma-url": prisma_view,
    "postgres-vars": postgres_vars_view,
    "sqlalchemy-url": sqlalchemy_view,
    "asyncpg-url": asyncpg_view,
    "jdbc": jdbc_view,
    "npgsql": npgsql_view,
}
# Which clients each preset is written for.
PRESET_VIEWS = {
    "url": ("libpq-url",),
    "libpq": ("libpq-env",),
    "medusa": ("medusa", "node-url"),
    "node": ("node-url",),
    "prisma": ("prisma-url",),
    "django": ("libpq-url", "postgres-vars"),
    "rails": ("libpq-url", "libpq-env"),
    "sqlalchemy": ("sqlalchemy-url",),
    "sqlalchemy-asyncpg": ("asyncpg-url",),
    "spring": ("jdbc",),
    "jdbc": ("jdbc",),
    "dotnet": ("npgsql",),
}
_PG_CONNECTION_KEYWORDS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE")
# The variables without which a view has nothing to connect with.
_VIEW_NEEDS = {
    "libpq-url": ("DATABASE_URL",),
    "node-url": ("DATABASE_URL",),
    "prisma-url": ("DATABASE_URL",),
    "libpq-env": tuple(_PG_KEYWORDS),
    "medusa": ("DB_HOST", "DB_PORT", "DB_USERNAME", "DB_PASSWORD"),
    "postgres-vars": ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_DB"),
    "sqlalchemy-url": ("DATABASE_URL",),
    "asyncpg-url": ("DATABASE_URL",),
    "jdbc": ("SPRING_DATASOURCE_URL", "JDBC_DATABASE_URL"),
    "npgsql": ("ConnectionStrings__Default",),
}


def client_views(values: Mapping[str, str], presets: Iterable[str] | None) -> list[ClientView]:
    """The clients to connect as: the presets', or (no profile) those the file's names imply."""
    if presets is None:
        kinds = [kind for kind, needs in _VIEW_NEEDS.items() if any(v in values for v in needs)]
        if "DATABASE_URL" in values:
            query = _split_url(values["DATABASE_URL"]).get("query", {})
            prisma = bool(query.keys() & {"schema", "sslaccept"})
            kinds = [k for k in kinds if k != ("libpq-url" if prisma else "prisma-url")]
            kinds = [k for k in kinds if k != "node-url"]
            # The URL's scheme names its reader: postgresql+asyncpg://, +psycopg, or libpq's.
            scheme = values["DATABASE_URL"].partition("://")[0]
            reader = (
                "asyncpg-url"
                if scheme.endswith("+asyncpg")
                else "sqlalchemy-url"
                if "+" in scheme
                else None
            )
            dialects = ("sqlalchemy-url", "asyncpg-url")
            kinds = [k for k in kinds if k not in dialects or k == reader]
            if reader is not None:
                kinds = [k for k in kinds if k not in ("libpq-url", "prisma-url")]
        if not any(values.get(v) for v in _PG_CONNECTION_KEYWORDS):
            # PGSSLMODE alone is the medusa or django preset's, not a libpq client's settings.
            kinds = [k for k in kinds if k != "libpq-env"]
    else:
        presets = list(presets)
        # Where two presets write one variable differently the later one's value is in the
        # file: the earlier preset's clients no longer read theirs (url then prisma:
        # DATABASE_URL is Prisma's). The same template written twice keeps both.
        written = {name: template for p in presets for name, template in PRESETS.get(p, {}).items()}
        kinds = []
        for preset in presets:
            own = PRESETS.get(preset, {})
            kinds += [
                kind
                for kind in PRESET_VIEWS.get(preset, ())
                if kind not in kinds
                and all(written[name] == own[name] for name in _VIEW_NEEDS[kind] if name in own)
            ]
    return [
        _VIEWS[kind](values)
        for kind in kinds
        if any(values.get(variable) for variable in _VIEW_NEEDS[kind])
    ]


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


# --- consistency of the file --------------------------------------------------------------

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


# --- what the database really is ----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What the file should point at: the running environment, or what the profile fixes."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    database: str | None = None
    sslmode: str | None = None
    sslrootcert: str | None = None
    running: bool = False
    profile_ref: str = "PROFILE"


def _target(profile: Profile | None, running: Environment | None) -> Target:
    ref = _profile_ref(profile)
    if running is not None:
        conn = running.connection
        return Target(
            host=conn.host,
            port=conn.port,
            user=conn.user,
            database=conn.database,
            sslmode=conn.sslmode,
            sslrootcert=str(conn.sslrootcert) if conn.sslrootcert else None,
            running=True,
            profile_ref=ref,
        )
    if profile is None:
        return Target()
    pg = profile.postgres
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(pg.host, pg.host)
    return Target(
        host=host,
        port=None if pg.port == "auto" else pg.port,
        user=pg.user,
        database=pg.database,
        sslmode=pg.ssl.mode,
        profile_ref=ref,
    )


def _profile_ref(profile: Profile | None) -> str:
    if profile is None or profile.path is None:
        return profile.name if profile else "PROFILE"
    with contextlib.suppress(ValueError):
        return str(profile.path.relative_to(Path.cwd()))
    return str(profile.path)


# --- the checks ---------------------------------------------------------------------------


def run_doctor(profile: Profile | None, env_file: Path | None) -> list[Check]:
    """Every check for `profile` and its env file (`env_file` overrides the profile's)."""
    from provisioner.environments import find
    from provisioner.runtime.select import wanted_runtime

    running = find(profile) if profile is not None else None
    target = _target(profile, running)
    checks: list[Check] = []
    client = None
    runtime = wanted_runtime(profile)
    if runtime == "native":
        checks.append(Check("docker", True, "not needed: the runtime is native"))
    else:
        docker_check, client = _check_docker(runtime)
        checks.append(docker_check)
    if profile is not None and running is not None:
        # It may run another version than the profile's (`up --postgres-version 17`): its
        # server is what the suite reaches, and it is here.
        checks.append(
            Check("image", True, f"not needed: the environment is up ({running.runtime})")
        )
    elif profile is not None and client is not None:
        checks.append(_check_image(profile, client))
    if profile is not None:
        checks.append(_check_port(profile, running, client))
    path = env_file if env_file is not None else (profile.env_file if profile else None)
    checks += _check_env_file(
        path, explicit=env_file is not None, profile=profile, running=running, target=target
    )
    secrets = _secrets(profile, running, path)
    return [_masked(check, secrets) for check in checks]


def _check_docker(runtime: str) -> tuple[Check, Any]:
    from provisioner.runtime.engines import sdk_client, survey, unavailable

    found = survey(timeout=3, every=True)
    # What else was found (a socket that refused, Desktop's beside the default one) is
    # evidence of which engine the suite's other tools may be talking to.
    others = [
        f"{probe.candidate.address} ({probe.candidate.source}): {probe.detail}"
        for probe in found.probes
        if probe.found and probe is not found.chosen
    ]
    also = f"; also found: {'; '.join(others)}" if others else ""
    try:
        if found.chosen is None:
            raise unavailable(found.probes)
        client = sdk_client(found.chosen.candidate)
    except EnvctlError as exc:
        if runtime == "auto":
            return Check(
                "docker",
                True,
                f"{exc.message}; runtime auto will use native Postgres binaries instead{also}",
            ), None
        return Check("docker", False, f"{exc.message}{also}", exc.hint), None
    chosen = found.chosen.candidate
    return Check(
        "docker",
        True,
        f"the Docker engine answers at {chosen.address} ({chosen.source}; {found.chosen.detail};"
        f" chosen because {found.reason}){also}",
    ), client


def _check_image(profile: Profile, client: Any) -> Check:
    from docker.errors import DockerException, ImageNotFound

    try:
        image = profile.postgres.resolved_image()
    except EnvctlError as exc:
        return Check("image", True, f"decided at start: {exc.message}")
    try:
        client.images.get(image)
    except ImageNotFound:
        return Check(
            "image",
            False,
            f"image {image} is not present locally (envctl would try to pull it)",
            f"`docker pull {image}`, or point ENVCTL_POSTGRES_IMAGE at a registry you can "
            "reach (e.g. mirror.example/postgres:{major}), or set postgres.image",
        )
    except DockerException as exc:
        return Check("image", False, f"cannot look up image {image}: {first_line(str(exc))}")
    return Check("image", True, f"image {image} is present")


def _check_port(profile: Profile, running: Environment | None, client: Any) -> Check:
    pg = profile.postgres
    if pg.port == "auto":
        if running is not None:
            return Check("port", True, f"port auto: the running environment has {running.port}")
        return Check("port", True, "postgres.port is auto: a free port is picked at start")
    port, host = pg.port, pg.host
    if running is not None and running.port == port:
        return Check("port", True, f"port {port} is held by this profile's running environment")
    holder = _container_publishing(port) if client is not None else None
    if holder is None and port_free(host, port):
        return Check("port", True, f"port {port} on {host} is free")
    who = f"container '{holder}'" if holder else "another process"
    stop = f"stop it (`docker stop {holder}`)" if holder else "stop it"
    return Check(
        "port",
        False,
        f"port {port} on {host} is in use by {who}",
        f"{stop}, choose another postgres.port, or use `port: auto`",
    )


def _container_publishing(port: int) -> str | None:
    from provisioner.runtime.docker import DockerRuntime
    from provisioner.runtime.engine import EngineError

    try:
        return DockerRuntime()._container_publishing(port)
    except (EnvctlError, EngineError):
        return None


def _check_env_file(
    path: Path | None,
    *,
    explicit: bool,
    profile: Profile | None,
    running: Environment | None,
    target: Target,
) -> list[Check]:
    if path is None:
        return [Check("env file", True, "the profile writes no env file: nothing to check")]
    try:
        text = read_env_text(path)
    except FileNotFoundError:
        if running is None and not explicit:
            return [
                Check(
                    "env file",
                    True,
                    f"{path} is not there: `envctl up` or `envctl run` writes it",
                )
            ]
        return [
            Check(
                "env file",
                False,
                f"{path} does not exist",
                f"start the environment (`envctl up {target.profile_ref}`), which writes it"
                if running is None
                else f"`envctl down {target.profile_ref}` and `envctl up {target.profile_ref}` "
                "write it again",
            )
        ]
    except OSError as exc:
        return [Check("env file", False, f"{path} cannot be read ({exc})")]
    values = parse_env_file(text)
    checks = [Check("env file", True, f"{path}: {_count(len(values), 'variable')}")]
    checks.append(_check_agreement(values))
    if profile is not None:
        checks.append(_check_presence(values, profile, running, target, path))
    elif (implied := _check_implied_presence(values, path)) is not None:
        checks.append(implied)
    presets = list(profile.env.preset) if profile is not None else None
    for view in client_views(values, presets):
        checks.append(_check_connection(view, target))
    if running is not None:
        checks.append(_check_drift(values, running, target, path))
    return checks


def _check_agreement(values: Mapping[str, str]) -> Check:
    problems = disagreements(values)
    if problems:
        return Check(
            "variables agree",
            False,
            "the variables name different settings: " + "; ".join(problems),
            "make them agree (envctl writes them all from one connection: `envctl up` "
            "rewrites the file), or remove the stale ones",
        )
    families = [f for f, names in _FAMILIES.items() if any(v in values for v in names.values())]
    if "DATABASE_URL" in values:
        families.insert(0, "DATABASE_URL")
    compared = ", ".join(families) or "no connection variables"
    return Check("variables agree", True, f"{compared}: no contradictions")


# What a client does when a preset's variable is missing (docs/CLIENTS.md).
_FALLBACKS: dict[str, dict[str, str]] = {
    "medusa": {
        "DB_HOST": "Medusa's runner will use localhost",
        "DB_PORT": "Medusa's runner will use 5432",
        "DB_USERNAME": "Medusa's runner will use the user postgres",
        "DB_PASSWORD": "Medusa's runner will send an empty password",
        "DATABASE_URL": "the app's medusa-config usually reads it (Medusa's runner does not)",
        "PGSSLMODE": "node-postgres will connect without SSL",
        "NODE_EXTRA_CA_CERTS": "Node will check the server against its own CA store only, "
        "which lacks envctl's CA",
        "MEDUSA_DB_SCHEMA": "Medusa's runner reads its schema from it",
        "DB_SCHEMA": "nothing in Medusa's runner reads it (apps may)",
    },
    "libpq": {
        "PGHOST": "libpq will use its local Unix socket",
        "PGPORT": "libpq will use 5432",
        "PGUSER": "libpq will use your operating-system user name",
        "PGPASSWORD": "libpq will send no password (or one from ~/.pgpass)",
        "PGDATABASE": "libpq will use a database named like the user",
        "PGSSLMODE": "libpq will use sslmode=prefer (SSL if offered, unverified)",
        "PGSSLROOTCERT": "libpq will look for ~/.postgresql/root.crt",
        "PGSSLCERT": "libpq will look for ~/.postgresql/postgresql.crt",
        "PGSSLKEY": "libpq will look for ~/.postgresql/postgresql.key",
    },
    # node-postgres 8.23's defaults (pg/lib/defaults.js), see docs/CLIENTS.md.
    "node": {
        "DATABASE_URL": "clients that read it have no database to connect to",
        "PGHOST": "node-postgres will use localhost",
        "PGPORT": "node-postgres will use 5432",
        "PGUSER": "node-postgres will use your operating-system user name",
        "PGPASSWORD": "node-postgres will send no password",
        "PGDATABASE": "node-postgres will use a database named like the user",
        "PGSSLMODE": "node-postgres will connect without SSL",
        "NODE_EXTRA_CA_CERTS": "Node will check the server against its own CA store only, "
        "which lacks envctl's CA",
    },
    "url": {"DATABASE_URL": "clients that read it have no database to connect to"},
    "prisma": {
        "DATABASE_URL": "Prisma stops: prisma.config.ts's env('DATABASE_URL') throws "
        "'Cannot resolve environment variable: DATABASE_URL.'"
    },
    "django": {
        "DATABASE_URL": "dj-database-url's config() returns {} (and logs a warning); "
        "cookiecutter-django's settings fall back to POSTGRES_*",
        "POSTGRES_HOST": "cookiecutter-django's settings will use the host postgres",
        "POSTGRES_PORT": "cookiecutter-django's settings will use 5432",
        "POSTGRES_USER": "cookiecutter-django's settings fail to load (no default)",
        "POSTGRES_PASSWORD": "cookiecutter-django's settings fail to load (no default)",
        "POSTGRES_DB": "cookiecutter-django's settings fail to load (no default)",
    },
    "rails": {"DATABASE_URL": "Rails will use config/database.yml alone"},
}
_FACT_OF = {
    "DB_HOST": "host",
    "PGHOST": "host",
    "POSTGRES_HOST": "host",
    "DB_PORT": "port",
    "PGPORT": "port",
    "POSTGRES_PORT": "port",
    "DB_USERNAME": "user",
    "PGUSER": "user",
    "POSTGRES_USER": "user",
    "PGDATABASE": "database",
    "POSTGRES_DB": "database",
    "PGSSLMODE": "sslmode",
}
_SAID_AS = {
    "host": "the database listens on {}",
    "port": "the database listens on {}",
    "user": "the database's user is {}",
    "database": "the database is {}",
    "sslmode": "the server's SSL mode is {}",
}


def _fallback(preset: str, variable: str) -> str:
    table = _FALLBACKS.get(preset, {})
    if variable in table:
        return table[variable]
    if variable in _FALLBACKS["libpq"]:
        return _FALLBACKS["libpq"][variable]
    return "nothing sets it"


def expected_variables(profile: Profile, running: Environment | None) -> dict[str, str]:
    """Variable name -> the preset that writes it ("vars" for the profile's own)."""
    if running is not None:
        names: Iterable[str] = running.variables
    else:
        # Certificate variables exist only with SSL (and client ones with client_cert).
        ssl = profile.postgres.ssl
        fake = Path("ca.crt")
        conn = Connection(
            host="h",
            port=1,
            user="u",
            password="p",
            database="d",
            sslmode=ssl.mode,
            sslrootcert=None if ssl.mode == "disable" else fake,
            sslcert=fake if ssl.client_cert else None,
            sslkey=fake if ssl.client_cert else None,
        )
        names = render_env(conn, profile.env.preset, profile.env.vars, profile.postgres.roles)
    owners: dict[str, str] = {}
    for name in names:
        if name in profile.env.vars:
            owners[name] = "vars"
            continue
        owners[name] = next((p for p in profile.env.preset if name in PRESETS[p]), "vars")
    return owners


def _check_implied_presence(values: Mapping[str, str], path: Path) -> Check | None:
    """Without a profile: Medusa's DB_* set always comes with the DATABASE_URL its app reads."""
    if not any(values.get(v) for v in _VIEW_NEEDS["medusa"]) or values.get("DATABASE_URL"):
        return None
    return Check(
        "variables present",
        False,
        f"DATABASE_URL is missing: {_fallback('medusa', 'DATABASE_URL')} (the file has DB_*)",
        f"add the DATABASE_URL `envctl env PROFILE --show-password` prints to {path}, or "
        "`envctl down` and `envctl up` to rewrite it",
    )


def _check_presence(
    values: Mapping[str, str],
    profile: Profile,
    running: Environment | None,
    target: Target,
    path: Path,
) -> Check:
    expected = expected_variables(profile, running)
    missing = [name for name in expected if not values.get(name)]
    if not missing:
        presets = ", ".join(profile.env.preset)
        count = _count(len(expected), "variable")
        return Check("variables present", True, f"all {count} of the presets {presets}")
    lines = []
    fixes = []
    for name in missing:
        owner = expected[name]
        if owner == "vars":
            lines.append(f"{name} is missing (the profile's env.vars sets it)")
        else:
            line = f"{name} is missing: {_fallback(owner, name)}"
            fact = _FACT_OF.get(name)
            actual = getattr(target, fact) if fact else None
            if fact and actual is not None:
                line += f", {_SAID_AS[fact].format(actual)}"
            lines.append(line)
        if running is not None and name in running.variables:
            fixes.append(f"{name}={running.variables[name]}")
    if fixes:
        fix = f"add {', '.join(fixes)} to {path}, or `envctl down` and `envctl up` to rewrite it"
    else:
        fix = f"`envctl up {target.profile_ref}` writes every variable of the profile's presets"
    return Check("variables present", False, "; ".join(lines), fix)


def _check_connection(view: ClientView, target: Target) -> Check:
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"connect: {view.label}"
    if view.problem:
        return Check(
            name,
            False,
            f"DATABASE_URL cannot be parsed: {view.problem}",
            "write it as postgresql://user:password@host:port/database?sslmode=...",
        )
    params = {k: v for k, v in view.params.items() if v != "" or k == "password"}
    where = f"{params.get('host', 'the local socket')}:{params.get('port', '5432')}"
    try:
        conninfo = make_conninfo("", connect_timeout=CONNECT_TIMEOUT, **params)
        with psycopg.connect(conninfo) as conn:
            ssl = "SSL" if conn.pgconn.ssl_in_use else "no SSL"
            version = conn.info.server_version
            can_create = conn.execute(CREATEDB_QUERY).fetchone()
    except psycopg.Error as exc:
        cause, fix = explain_failure(str(exc), view, target)
        return Check(name, False, f"{cause} (libpq: {_libpq_detail(str(exc))})", fix)
    evidence = (
        f"connected to {where} as {params.get('user', '?')}, database "
        f"{params.get('dbname', '?')}, {ssl} (sslmode {params.get('sslmode', 'prefer')}), "
        f"server {version // 10000}"
    )
    evidence += "".join(f"; {note}" for note in view.notes)
    if view.needs_createdb and not (can_create and can_create[0]):
        return Check(
            name,
            False,
            f"{evidence}, but {params.get('user')} may not create databases, which the test "
            "runner does",
            "connect as a superuser (postgres.user) or a role with CREATEDB (postgres.roles)",
        )
    return Check(name, True, evidence)


def _source(view: ClientView, keyword: str) -> tuple[str, bool]:
    """The variable behind a keyword, and whether it was missing (a default was used)."""
    origin = view.origin.get(keyword, "")
    missing = origin.endswith(" (missing)")
    variable = origin.removesuffix(" (missing)").split(" ")[0] or "DATABASE_URL"
    return variable, missing


def _set(view: ClientView, keyword: str, value: object) -> str:
    variable, _ = _source(view, keyword)
    if variable == "DATABASE_URL":
        part = {"dbname": "database", "user": "user name"}.get(keyword, keyword)
        if keyword in ("sslmode", "sslrootcert"):
            return f"set {keyword}={value} in DATABASE_URL"
        return f"set the {part} in DATABASE_URL to {value}"
    return f"set {variable}={value}"


def explain_failure(message: str, view: ClientView, target: Target) -> tuple[str, str]:
    """A connection error as (cause, fix), in terms of the file's variables."""
    params = view.params
    host, port = params.get("host", "the local socket"), params.get("port", "5432")
    mode = params.get("sslmode", "prefer")
    mode_var, mode_missing = _source(view, "sslmode")
    up = f"start it: `envctl up {target.profile_ref}`"
    low = message.lower()
    if "server does not support ssl" in low:
        node = view.kind in ("medusa", "node-url")
        how = (
            "node-postgres uses verified SSL for every sslmode but disable and no-verify"
            if node
            else f"sslmode {mode} from {mode_var}"
        )
        server = " (the profile has ssl: disable)" if target.sslmode == "disable" else ""
        return (
            f"the client requires SSL ({how}) but the server has SSL off{server}",
            f"{_set(view, 'sslmode', 'disable')}, or turn SSL on in the profile (`ssl: require`)",
        )
    if "no pg_hba.conf entry" in low and "no encryption" in low:
        wanted = target.sslmode if target.sslmode and target.sslmode != "disable" else "require"
        origin = f"{mode_var} is missing" if mode_missing else f"{mode_var} says {mode}"
        return (
            f"the server accepts only SSL connections (the profile has ssl: {wanted}) and this "
            f"client connects without SSL ({origin})",
            _set(view, "sslmode", wanted),
        )
    if "pg_hba.conf rejects connection" in low:
        # envctl's own rule: its boot script turns TCP clients away until the password is set.
        return (
            "the server runs but is not ready yet: envctl turns clients away until it has set "
            "the environment's password",
            "wait until `envctl up` reports the database ready; if it failed, its error shows "
            "the server's log",
        )
    if "connection refused" in low:
        port_var, port_missing = _source(view, "port")
        said = f"{port_var} is missing, so {port}" if port_missing else f"from {port_var}"
        cause = f"nothing listens on {host}:{port} ({said})"
        if target.port is not None and str(target.port) != port:
            return (
                cause,
                f"the database listens on {target.port}: {_set(view, 'port', target.port)}",
            )
        if target.host is not None and target.host != host and target.running:
            return (
                cause,
                f"the database listens on {target.host}: {_set(view, 'host', target.host)}",
            )
        return cause, up if not target.running else "check the environment: `envctl status`"
    if "no such file or directory" in low:
        fix = _set(view, "host", target.host) if target.host else f"set {_source(view, 'host')[0]}"
        return "no host is set, so libpq tried its local Unix socket, where nothing listens", fix
    if "password authentication failed" in low:
        user = params.get("user", "?")
        variable, missing = _source(view, "password")
        said = f"{variable} is missing" if missing else f"from {variable}"
        return (
            f"the server rejects the password for user {user} ({said})",
            f"use the environment's password: `envctl env {target.profile_ref} --show-password` "
            "prints it; `envctl up` writes it into the file",
        )
    found = re.search(r'database "([^"]+)" does not exist', message)
    if found:
        fix = (
            _set(view, "dbname", target.database)
            if target.database
            else "use the database of postgres.database in the profile"
        )
        return f"the server has no database {found.group(1)}", fix
    found = re.search(r'role "([^"]+)" does not exist', message)
    if found:
        fix = _set(view, "user", target.user) if target.user else "use postgres.user's name"
        return f"the server has no user {found.group(1)}", fix
    if "does not match host name" in low:
        from provisioner.postgres.ssl import HOSTS_IN_CERTIFICATE

        names = ", ".join(HOSTS_IN_CERTIFICATE)
        return (
            f"the server's certificate names {names} (and the container's names), not {host}, "
            f"and sslmode {mode} checks the name",
            f"connect to one of those names ({_set(view, 'host', target.host or 'localhost')}), "
            "or use sslmode verify-ca, which checks the CA but not the name",
        )
    if "certificate verify failed" in low:
        ca = params.get("sslrootcert", "~/.postgresql/root.crt")
        trusted = "the system's CA store" if ca == "system" else ca
        fix = (
            _set(view, "sslrootcert", target.sslrootcert)
            if target.sslrootcert
            else "trust the CA envctl wrote next to the env file (.envctl/<id>/ca.crt)"
        )
        if view.kind in ("medusa", "node-url") and ca == "system":
            fix = f"set NODE_EXTRA_CA_CERTS={target.sslrootcert or 'the CA file'}"
        return f"the server's certificate is not signed by a CA this client trusts ({trusted})", fix
    if "root certificate file" in low and "does not exist" in low:
        return (
            f"sslmode {mode} verifies the server but no CA file is given",
            _set(view, "sslrootcert", target.sslrootcert or "the environment's ca.crt"),
        )
    if "could not translate host name" in low:
        return f"the host name {host} does not resolve", _set(
            view, "host", target.host or "127.0.0.1"
        )
    if "timeout expired" in low:
        return f"nothing answered on {host}:{port} within {CONNECT_TIMEOUT}s", up
    if "could not open" in low or "could not load" in low or "could not read" in low:
        return "a certificate or key file the client names cannot be read", (
            "point the sslrootcert/sslcert/sslkey settings (PGSSL* or the URL) at the files "
            f"of the running environment; `envctl env {target.profile_ref}` lists them"
        )
    if "certificate" in low:
        return "the server wants a client certificate this client does not send", (
            "set PGSSLCERT and PGSSLKEY (or sslcert and sslkey in the URL) to the files envctl "
            "wrote, or turn client_cert off in the profile"
        )
    return "the connection failed", up if not target.running else "see the server's log"


def _check_drift(
    values: Mapping[str, str], running: Environment, target: Target, path: Path
) -> Check:
    drifted = []
    for name, expected in running.variables.items():
        actual = values.get(name)
        if actual == expected:
            continue
        said = "missing" if actual is None else f"{actual!r}, environment {expected!r}"
        drifted.append(f"{name} ({'file ' + said if actual is not None else said})")
    if not drifted:
        return Check(
            "matches environment", True, f"{path} holds the running environment's variables"
        )
    return Check(
        "matches environment",
        False,
        f"{path} differs from the running environment: {', '.join(drifted)}",
        f"`envctl env {target.profile_ref} --show-password` prints the right values; "
        f"`envctl down {target.profile_ref}` then `envctl up` writes them again",
    )


# --- secrets ------------------------------------------------------------------------------


def read_env_text(path: Path) -> str:
    """An env file's text; a byte that is not UTF-8 (envctl keeps those when it merges) reads
    as U+FFFD, so that it can still be checked and printed."""
    return path.read_bytes().decode("utf-8", errors="replace")


def _secrets(profile: Profile | None, running: Environment | None, path: Path | None) -> set[str]:
    found: set[str] = set()
    if running is not None:
        found.add(running.password)
    if profile is not None and profile.postgres.password:
        found.add(profile.postgres.password)
    if path is not None:
        with contextlib.suppress(OSError):
            values = parse_env_file(read_env_text(path))
            for name, value in values.items():
                if "PASSWORD" in name:
                    found.add(value)
                if "://" in value:
                    found.add(_split_url(value).get("password", ""))
    found |= {quote(secret, safe="") for secret in found}
    return {secret for secret in found if len(secret) >= 3}


def _masked(check: Check, secrets: set[str]) -> Check:
    def hide(text: str | None) -> str | None:
        return None if text is None else hide_secrets(text, secrets, MASK)

    return Check(check.name, check.ok, hide(check.evidence) or "", hide(check.fix))


def _libpq_detail(message: str) -> str:
    """libpq's reason without the "connection to server at ... failed:" preamble."""
    line = first_line(message).removeprefix("connection failed: ")
    line = re.sub(r"^connection to server (at|on) .*? failed: ", "", line)
    return re.sub(r"^FATAL:\s+", "", line)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
