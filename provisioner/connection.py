"""How a client reaches a running database: the one source every variable is rendered from."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode


@dataclass(frozen=True)
class Connection:
    """Where a client connects and with which credentials and TLS settings."""

    host: str
    port: int
    user: str
    password: str
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
        query = urlencode(
            [(key, str(value)) for key, value in self.ssl_parameters().items()], safe="/"
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
        }

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


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False
