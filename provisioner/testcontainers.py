"""testcontainers' PostgresContainer, served by envctl: swap one import, keep the fixtures.

    # from testcontainers.postgres import PostgresContainer
    from provisioner.testcontainers import EnvctlPostgres as PostgresContainer

    with PostgresContainer("postgres:16", profile="envctl.yaml") as pg:
        engine = sqlalchemy.create_engine(pg.get_connection_url())

The methods a suite calls on testcontainers' object keep their meaning (`start`, `stop`, `with`,
`get_connection_url(host=None, driver=...)` with the same driver rule, `get_container_host_ip`,
`get_exposed_port`, `username`, `password`, `dbname`); what starts is an envctl environment:
the profile's seeds, SSL, cache and teardown, on Docker or native binaries.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

from provisioner.api import RunningEnvironment
from provisioner.environments import environment as run_environment
from provisioner.errors import UsageError
from provisioner.profile import Profile, load_profile, parse_profile

_UNSET: Any = object()


class EnvctlPostgres:
    """A Postgres for a test suite, with the interface of testcontainers' PostgresContainer.

    `image` ("postgres:16", "postgres:16-alpine") picks the image and, from its tag, the major;
    `username`, `password` and `dbname` are the profile's `postgres.user`, `password` and
    `database` (unset: the profile's, or envctl's defaults: `postgres`, a random password,
    `test`). `profile` is a profile file or a loaded Profile; other keyword arguments override
    its keys, `__` standing for a dot (`postgres__port=55432`).
    """

    def __init__(
        self,
        image: str | None = None,
        port: int = 5432,
        username: str | None = None,
        password: str | None = None,
        dbname: str | None = None,
        driver: str | None = "psycopg2",
        *,
        profile: str | Path | Profile | None = None,
        **overrides: Any,
    ) -> None:
        self.port = port  # the port inside a container, as testcontainers names it
        self.driver = f"+{driver}" if driver else ""
        self._profile = profile
        self._overrides = dict(overrides)
        if image is not None:
            self._overrides["postgres__image"] = image
            major = re.match(r"(\d+)", image.rpartition(":")[2] if ":" in image else "")
            if major:
                self._overrides.setdefault("postgres__version", major[1])
        for key, value in (("user", username), ("password", password), ("database", dbname)):
            if value is not None:
                self._overrides[f"postgres__{key}"] = value
        self._stack: contextlib.ExitStack | None = None
        self._env: RunningEnvironment | None = None

    # --- testcontainers' lifecycle -------------------------------------------------------

    def start(self) -> EnvctlPostgres:
        """Start the environment and wait until it accepts connections."""
        if self._env is not None:
            return self
        profile = self._load()
        stack = contextlib.ExitStack()
        started = stack.enter_context(run_environment(profile))
        self._env, self._stack = RunningEnvironment(profile, started), stack
        return self

    def _load(self) -> Profile:
        dotted = {key.replace("__", "."): value for key, value in self._overrides.items()}
        if isinstance(self._profile, Profile):
            if dotted:
                raise UsageError(
                    "a loaded Profile takes no overrides: pass its file instead, or change it"
                )
            return self._profile
        if self._profile is not None:
            return load_profile(Path(self._profile), dotted)
        # No profile: envctl's defaults, no env file (a fixture's business is its own), and a
        # name of its own, so that several of them can run at once as containers can.
        anchor = Path.cwd() / f".envctl-testcontainers-{uuid.uuid4().hex[:8]}.yaml"
        return parse_profile("name: testcontainers\nenv:\n  file: null\n", anchor, dotted)

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        """Remove the environment (and restore its env file); harmless when not started."""
        stack, self._stack, self._env = self._stack, None, None
        if stack is not None:
            stack.close()

    def __enter__(self) -> EnvctlPostgres:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what a suite asks of it ---------------------------------------------------------

    @property
    def env(self) -> RunningEnvironment:
        """envctl's own view of the running environment (clones, reset, variables)."""
        if self._env is None:
            raise UsageError("the Postgres environment has not been started: call start()")
        return self._env

    @property
    def username(self) -> str:
        return self.env.user

    @property
    def password(self) -> str:
        return self.env.password

    @property
    def dbname(self) -> str:
        return self.env.database

    def get_container_host_ip(self) -> str:
        return self.env.host

    def get_exposed_port(self, port: int | None = None) -> int:
        """The port on the host; envctl's server has one, whichever container port is named."""
        return self.env.port

    def get_connection_url(self, host: str | None = None, driver: str | None = _UNSET) -> str:
        """`postgresql+DRIVER://user:password@host:port/dbname`, as testcontainers builds it:
        the constructor's driver (default psycopg2), another one here, or `driver=None` for a
        plain `postgresql://` URL. An SSL profile's settings come along as query parameters."""
        dialect = "postgresql" + (
            "" if driver is None else self.driver if driver is _UNSET else f"+{driver}"
        )
        env = self.env
        url = (
            f"{dialect}://{quote(env.user, safe='')}:{quote(env.password, safe='')}"
            f"@{host or env.host}:{env.port}/{quote(env.database, safe='')}"
        )
        connection = env.connection
        if connection.sslmode != "disable":
            query = {"sslmode": connection.sslmode}
            for key in ("sslrootcert", "sslcert", "sslkey"):
                value = getattr(connection, key, None)
                if value:
                    query[key] = str(value)
            url += "?" + urlencode(query)
        return url
