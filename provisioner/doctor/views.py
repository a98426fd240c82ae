"""What each client makes of the file: the connection it reads from the variables (its own
parser, its own defaults), the clients each preset is written for, and which to connect as."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from provisioner.doctor.urls import _split_url, _url_problem
from provisioner.errors import first_line
from provisioner.presets import PRESETS


def describe_presets() -> dict[str, dict[str, str]]:
    """Each preset's variables and the template each is rendered from, e.g. DB_PORT: {port}."""
    return {name: dict(variables) for name, variables in PRESETS.items()}


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
