"""Where Postgres runs: one small interface, a backend per place (Docker, native binaries)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from provisioner.connection import Connection
from provisioner.runtime.engines import Placement


@dataclass(frozen=True)
class ServerFile:
    """A file placed in the server's private config folder before it starts."""

    name: str
    content: bytes
    mode: int = 0o600


@dataclass(frozen=True)
class ServerSpec:
    """Everything a runtime needs to start one environment's server."""

    env_id: str
    image: str
    major: int
    user: str
    password: str
    database: str
    bind_host: str
    port: int | None  # None: any free port
    settings: dict[str, str]
    labels: dict[str, str]
    files: tuple[ServerFile, ...] = ()
    initdb_args: tuple[str, ...] = ()
    bin_dir: Path | None = None  # native: the profile's postgres.bin_dir, if it sets one
    locale: str = "en_US.UTF-8"
    encoding: str = "UTF8"
    cacheable: bool = False  # the cluster comes from the cache or is kept in it afterwards
    from_cache: str | None = None  # the cache entry to start from instead of initdb
    restores_seeds: bool = False  # this start restores seeds: their SQL runs in the server
    joined: bool = False  # a suite container joins the server's network
    # What runs against it makes databases from its templates, copies of many files each:
    # template1's (postgres.template1), per-worker databases, resets, per-test clones.
    makes_databases: bool = False

    @property
    def disposable(self) -> bool:
        """Whether nothing needs to survive a crash: fsync off, so initdb may skip it too."""
        return self.settings.get("fsync") == "off"


@dataclass(frozen=True)
class StartedServer:
    """A server that runs (not necessarily ready yet)."""

    port: int
    details: dict[str, Any] = field(default_factory=dict)
    # Called once the server answers (or has failed): lets go of what the start held for it.
    release: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)


@dataclass(frozen=True)
class ExecResult:
    """How a client tool run next to the server ended."""

    exit_code: int
    output: str


@dataclass(frozen=True)
class FoundEnvironment:
    """An environment a runtime knows about, as its labels describe it."""

    env_id: str
    labels: dict[str, str]
    status: str
    resources: tuple[str, ...]


class RuntimeCache(Protocol):
    """Where a runtime keeps initialized clusters (see provisioner.cache)."""

    def identity(self, image: str, major: int, bin_dir: Path | None) -> str | None:
        """What identifies the server build for cache keys, or None if this runtime caches not."""
        ...

    def entry(self, key: str) -> str | None:
        """The cache entry for `key` (what `ServerSpec.from_cache` takes), if there is one."""
        ...

    def store(self, env_id: str, key: str, base_image: str, labels: dict[str, str]) -> None:
        """Keep the environment's current cluster as the cache entry for `key`."""
        ...

    def started_from(self, env_id: str, entry: str) -> None:
        """A server started from `entry` answers: prepare what makes the next start from it
        fast (called only now, so that nothing competes with this start)."""
        ...

    def entries(self) -> list[dict[str, Any]]:
        """Every entry: id, tags (empty if left over by a concurrent build), labels, size,
        created."""
        ...

    def remove(self, entry_id: str) -> None:
        """Remove an entry (not one a running environment uses)."""
        ...


class Runtime(Protocol):
    """What the lifecycle needs from a place that runs Postgres."""

    name: str

    @property
    def cache(self) -> RuntimeCache:
        """Where this runtime keeps initialized clusters."""
        ...

    def config_dir(self, env_id: str) -> str:
        """Where `ServerSpec.files` land, as the server sees the path."""
        ...

    def placement(self, bind_host: str) -> Placement:
        """Where the server binds for the profile's `bind_host`, and the address clients use."""
        ...

    def server_names(self, env_id: str) -> tuple[str, ...]:
        """Other host names clients reach the server by (on a container network), for its
        certificate."""
        ...

    def describe(self, image: str) -> str:
        """What the server runs from, as the start's progress line names it."""
        ...

    def start(
        self, spec: ServerSpec, meanwhile: Callable[[], object] | None = None
    ) -> StartedServer:
        """Create and start the server; on failure leave nothing behind.

        `meanwhile` is the caller's own preparation (importing the client that will check
        readiness): a runtime calls it once, where it would otherwise wait on another
        process, or before it returns.
        """
        ...

    def failure(self, env_id: str) -> str | None:
        """Why the server is not running, or None while it runs."""
        ...

    def log_tail(self, env_id: str, lines: int = 40) -> str:
        """The last lines of the server's log."""
        ...

    def remove(self, env_id: str) -> list[str]:
        """Remove everything of `env_id`; return what was removed."""
        ...

    def environments(self) -> list[FoundEnvironment]:
        """Every environment of envctl's this runtime can see."""
        ...

    def exec(
        self, env_id: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ExecResult:
        """Run a client tool (psql, pg_restore, pg_dump...) of the server's own install.

        PGHOST and PGPORT point at the server's local socket, where the server user connects
        without a password; `env` adds to them (PGUSER, PGDATABASE, ...).
        """
        ...

    def copy_in(self, env_id: str, source: Path) -> str:
        """Make a host file or folder readable to `exec`'d tools; return its path for them."""
        ...

    def copy_out(self, env_id: str, path: str, destination: Path) -> None:
        """Copy a file an `exec`'d tool wrote back to the host."""
        ...

    def run_suite_container(
        self,
        env_id: str,
        *,
        image: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        mounts: Mapping[Path, str],
        workdir: str,
        timeout: float | None,
        user: str | None = None,
    ) -> int:
        """Run the suite in a container on the environment's network (where `in_network`
        reaches the server); return its exit code. A runtime without containers refuses
        (UsageError)."""
        ...

    def in_network(self, connection: Connection) -> Connection:
        """`connection` as a client on the environment's own network sees it (a suite
        container): the server's name and port there."""
        ...
