"""How a client reaches a running database: the one source every variable is rendered from."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from provisioner.errors import EnvctlError

# A superuser session whose statements and errors the server does not log, whatever the
# profile's settings (log_statement: all): the one that sets a password. Errors go out without
# the statement and its context, where EXECUTE would quote it. docker_boot.sh has its copy.
UNLOGGED_SESSION = (
    "-c log_statement=none -c log_min_duration_statement=-1 "
    "-c log_min_error_statement=panic -c log_error_verbosity=terse"
)


@dataclass(frozen=True)
class Connection:
    """Where a client connects and with which credentials and TLS settings."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)  # a failing test's traceback shows its fixtures' reprs
    database: str
    sslmode: str = "disable"
    sslrootcert: Path | None = None
    sslcert: Path | None = None
    sslkey: Path | None = None

    @property
    def url(self) -> str:
        """A libpq URL with user and password percent-encoded and the TLS settings as query."""
        host = self.host
        if _is_ipv6(host):
            host = f"[{host}]"
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        # %20, not "+": libpq decodes only %XX in URL query values (a "+" stays a "+").
        query = urlencode(
            [(key, str(value)) for key, value in self.ssl_parameters().items()],
            safe="/",
            quote_via=quote,
        )
        return (
            f"postgresql://{credentials}@{host}:{self.port}/{quote(self.database, safe='')}?{query}"
        )

    def ssl_parameters(self) -> dict[str, str]:
        """sslmode plus whichever certificate paths are set, in libpq's key names."""
        params = {"sslmode": self.sslmode}
        for key in ("sslrootcert", "sslcert", "sslkey"):
            value = getattr(self, key)
            if value is not None:
                params[key] = str(value)
        return params

    def template_values(self) -> dict[str, str]:
        """The values `{url}`, `{host}`, ... in env-var templates stand for."""
        return {
            "url": self.url,
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "sslmode": self.sslmode,
            "sslrootcert": str(self.sslrootcert or ""),
            "sslcert": str(self.sslcert or ""),
            "sslkey": str(self.sslkey or ""),
            "prisma_url": self.prisma_url,
            "sqlalchemy_url": self.sqlalchemy_url,
            "asyncpg_url": self.asyncpg_url,
            "jdbc_url": self.jdbc_url,
            "npgsql": self.npgsql,
        }

    @property
    def sqlalchemy_url(self) -> str:
        """SQLAlchemy 2's URL for psycopg 3 (`postgresql+psycopg://`): its query parameters
        reach libpq as they are, so TLS settings are libpq's. See docs/CLIENTS.md."""
        return "postgresql+psycopg://" + self.url.removeprefix("postgresql://")

    @property
    def asyncpg_url(self) -> str:
        """SQLAlchemy 2's URL for asyncpg (`postgresql+asyncpg://`): the dialect hands query
        parameters to `asyncpg.connect()` as keywords, which knows `ssl=<mode>` but no
        `sslmode` or certificate paths (a TypeError): asyncpg reads those from PGSSLROOTCERT,
        PGSSLCERT and PGSSLKEY, which the preset writes beside it. See docs/CLIENTS.md."""
        base = self.url.split("?", 1)[0].removeprefix("postgresql://")
        return f"postgresql+asyncpg://{base}?ssl={self.sslmode}"

    @property
    def jdbc_url(self) -> str:
        """pgjdbc's URL (`jdbc:postgresql://host:port/db?sslmode=...`), credentials left to
        the USERNAME/PASSWORD variables beside it. pgjdbc knows libpq's six sslmodes and
        URL-decodes query values (a "+" would become a space: %20 is written). Its default
        LibPQFactory reads `sslrootcert` (a PEM or DER file) only for verify-ca/verify-full;
        client keys must be PKCS-8 DER or PKCS-12, so sslcert/sslkey are not written.
        See docs/CLIENTS.md."""
        host = f"[{self.host}]" if _is_ipv6(self.host) else self.host
        params = [("sslmode", self.sslmode)]
        if self.sslrootcert is not None:
            params.append(("sslrootcert", str(self.sslrootcert)))
        query = urlencode(params, safe="/", quote_via=quote)
        return f"jdbc:postgresql://{host}:{self.port}/{quote(self.database, safe='')}?{query}"

    @property
    def npgsql(self) -> str:
        """An Npgsql connection string: `Host=...;Port=...;...;SSL Mode=Prefer`, values quoted
        as .NET's DbConnectionStringBuilder parses them. See docs/CLIENTS.md."""
        parts = [
            ("Host", self.host),
            ("Port", str(self.port)),
            ("Database", self.database),
            ("Username", self.user),
            ("Password", self.password),
            ("SSL Mode", NPGSQL_SSL_MODES[self.sslmode]),
        ]
        if self.sslrootcert is not None:
            parts.append(("Root Certificate", str(self.sslrootcert)))
        return ";".join(f"{key}={npgsql_quote(value)}" for key, value in parts)

    @property
    def prisma_url(self) -> str:
        """This connection in Prisma's own URL dialect (its engines' `quaint` parser).

        Prisma knows only `sslmode=disable|prefer|require` (any other value silently means
        prefer) and by default accepts any certificate; it reads the CA from `sslcert` and
        verifies chain and host name only with `sslaccept=strict`. `sslrootcert` is ignored by
        Prisma's engines but read by node-postgres, which Prisma Client 7 connects through
        (`@prisma/adapter-pg`) and which verifies against Node's CA store otherwise. A client
        certificate needs PKCS#12 (`sslidentity`), which envctl does not write.
        See docs/CLIENTS.md.
        """
        params = [
            ("schema", "public"),
            ("sslmode", self.sslmode if self.sslmode in ("disable", "prefer") else "require"),
        ]
        if self.sslrootcert is not None:
            params.append(("sslrootcert", str(self.sslrootcert)))
            if self.sslmode in ("verify-ca", "verify-full"):
                params += [("sslcert", str(self.sslrootcert)), ("sslaccept", "strict")]
        return f"{self.url.split('?', 1)[0]}?{urlencode(params, safe='/', quote_via=quote)}"

    def psycopg_kwargs(self, connect_timeout: int = 5) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect that mean exactly this connection."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.database,
            "connect_timeout": connect_timeout,
        }
        kwargs.update(self.ssl_parameters())
        return kwargs

    def with_database(self, database: str) -> Connection:
        """The same server and credentials, another database."""
        return replace(self, database=database)


# libpq's sslmode names and Npgsql's SslMode members (the enum's names are what it parses).
NPGSQL_SSL_MODES = {
    "disable": "Disable",
    "allow": "Allow",
    "prefer": "Prefer",
    "require": "Require",
    "verify-ca": "VerifyCA",
    "verify-full": "VerifyFull",
}


# DbConnectionOptions' ConnectionStringQuoteValueRegex: the values it leaves unquoted.
_NPGSQL_BARE = re.compile(r"^[^\"'=;\s\x00-\x1f\x7f-\x9f]*$")


def npgsql_quote(value: str) -> str:
    """A connection-string value as .NET's DbConnectionStringBuilder writes it (and so reads it
    back): bare only without quotes, `=`, `;`, blanks and control characters; else single
    quotes around a value with only double quotes in it, or double quotes with inner ones
    doubled."""
    if _NPGSQL_BARE.fullmatch(value):
        return value
    if '"' in value and "'" not in value:
        return f"'{value}'"
    return '"' + value.replace('"', '""') + '"'


def hide_secrets(text: str, secrets: Iterable[str], mask: str = "****") -> str:
    """`text` with every secret replaced by `mask`, longest first (a password inside its own
    URL-encoded form must not leave half of that form behind)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, mask)
    return text


@contextlib.contextmanager
def secrets_hidden_in_errors(secrets: Iterable[str]) -> Iterator[None]:
    """Mask `secrets` in any EnvctlError raised inside: their messages carry server logs,
    initdb's and psql's output, and those may quote a password."""
    forms = list(secrets)
    try:
        yield
    except EnvctlError as exc:
        exc.message = hide_secrets(exc.message, forms)
        exc.hint = None if exc.hint is None else hide_secrets(exc.hint, forms)
        exc.args = (exc.message, *exc.args[1:])
        raise


def password_forms(password: str) -> set[str]:
    """A password as it appears in output: plain, percent-encoded (in URLs), and as a SQL
    literal: quotes doubled, and backslashes too in initdb's E'' string."""
    literal = password.replace("'", "''")
    return {password, quote(password, safe=""), literal, literal.replace("\\", "\\\\")}


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False
