"""The Python API: a disposable, seeded Postgres around a `with` block.

    import provisioner

    with provisioner.environment("profiles/quickstart.yaml", postgres__port=55432) as env:
        url = env.clone("case_1")   # a fresh copy of the seeded database
        ...

The same lifecycle as `envctl run`: the profile is loaded (keyword arguments override its keys,
`__` standing for a dot), the server started and seeded, and everything removed when the block
ends, whether it ends normally or with an exception.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from provisioner.connection import Connection
from provisioner.envfile import render_env
from provisioner.environments import Environment
from provisioner.environments import environment as run_environment
from provisioner.environments import reset as reset_environment
from provisioner.errors import InfrastructureError, UsageError, first_line
from provisioner.postgres.databases import (
    clone_database,
    drop_database,
    is_clone,
    list_clones,
    template_name,
)
from provisioner.profile import Profile, load_profile

MAX_NAME = 63  # Postgres truncates longer identifiers
_SERVER_DATABASES = ("postgres", "template0", "template1")
T = TypeVar("T")


@dataclass(frozen=True)
class ClonedDatabase:
    """A database copied from the seeded template, and the variables that point at it."""

    name: str
    url: str = field(repr=False)  # they hold the password; pytest prints a failed test's
    env: dict[str, str] = field(repr=False)  # fixtures in its traceback


@dataclass(frozen=True)
class RunningEnvironment:
    """A running environment: how to reach it, its variables, and fresh copies of its data."""

    profile: Profile
    environment: Environment

    @property
    def url(self) -> str:
        """The libpq URL of the working database."""
        return self.environment.url

    @property
    def host(self) -> str:
        return self.environment.host

    @property
    def port(self) -> int:
        return self.environment.port

    @property
    def user(self) -> str:
        return self.environment.user

    @property
    def password(self) -> str:
        return self.environment.password

    @property
    def database(self) -> str:
        return self.environment.database

    @property
    def connection(self) -> Connection:
        """The working database's connection settings as a value object."""
        return self.environment.connection

    @property
    def env(self) -> dict[str, str]:
        """The rendered variables (DATABASE_URL, PG*, ...), as the env file holds them."""
        return self.environment.env

    def env_for(self, database: str) -> dict[str, str]:
        """The same variables, pointing at `database` on this server instead."""
        presets = self.profile.env.preset
        return render_env(
            self.connection.with_database(database),
            presets,
            self.profile.env.vars,
            self.profile.postgres.roles,
        )

    def reset(self) -> float:
        """Put the working database back to its seeded state; return the seconds it took."""
        return _database_call(lambda: reset_environment(self.environment))

    def clone(self, name: str) -> str:
        """Create database `name` as a copy of the seeded template; return its URL."""
        self._check_name(name)
        return _database_call(lambda: clone_database(self.connection, name).url)

    def clone_database(self, name: str) -> ClonedDatabase:
        """Like `clone`, with the variables (DATABASE_URL, PG*, ...) rendered for the copy."""
        return ClonedDatabase(name=name, url=self.clone(name), env=self.env_for(name))

    def drop(self, name: str) -> None:
        """Drop database `name` (a clone), ending its connections first."""
        self._check_name(name)
        _database_call(lambda: drop_database(self.connection, name))

    def clones(self) -> list[tuple[str, int]]:
        """The clones on this server (made by `clone`, tagged as such), with sizes in bytes."""
        return _database_call(lambda: list_clones(self.connection))

    def drop_clone(self, name: str) -> None:
        """Drop `name` only if it is a clone envctl made: never the user's own databases."""
        self._check_name(name)
        found = _database_call(lambda: is_clone(self.connection, name))
        if found is None:
            raise UsageError(
                f"there is no database '{name}' on this server",
                hint="`envctl db list PROFILE` names the clones",
            )
        if not found:
            raise UsageError(
                f"'{name}' is not a clone envctl made: it is left alone",
                hint="envctl drops only databases it cloned (`envctl db list PROFILE`)",
            )
        self.drop(name)

    def _check_name(self, name: str) -> None:
        if not name or len(name.encode()) > MAX_NAME or "\x00" in name:
            raise UsageError(
                f"'{name}' is not a database name", hint="use 1 to 63 characters, e.g. case_1"
            )
        if name in (self.database, template_name(self.database), *_SERVER_DATABASES):
            raise UsageError(
                f"'{name}' is a database envctl manages, not a clone",
                hint="choose another name; reset() puts the working database back",
            )


@contextlib.contextmanager
def environment(
    profile_path: str | os.PathLike[str], /, **overrides: Any
) -> Iterator[RunningEnvironment]:
    """Bring the profile's environment up for a `with` block; tear it down when it ends.

    Keyword arguments override profile keys before validation: `postgres__port=55432` sets
    `postgres.port`, `env__file=None` writes no env file.
    """
    dotted = {key.replace("__", "."): value for key, value in overrides.items()}
    profile = load_profile(Path(profile_path), dotted)
    with run_environment(profile) as started:
        yield RunningEnvironment(profile, started)


def _database_call(call: Callable[[], T]) -> T:
    import psycopg

    try:
        result = call()
    except psycopg.errors.DuplicateDatabase as exc:
        raise UsageError(first_line(exc), hint="drop it first, or choose another name") from None
    except psycopg.Error as exc:
        raise InfrastructureError(f"the database server refused: {first_line(exc)}") from None
    return result
