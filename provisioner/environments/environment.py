"""An environment as clients see it, read back from its record: what `find` returns and what
every command that works on a running environment starts from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from provisioner.connection import Connection
from provisioner.environments.claim import is_orphan
from provisioner.errors import NotRunningError
from provisioner.profile import Profile
from provisioner.state import EnvironmentRecord, load_record


@dataclass(frozen=True)
class Environment:
    """A running environment as a client sees it."""

    env_id: str
    name: str
    runtime: str
    connection: Connection
    variables: dict[str, str] = field(repr=False)  # they hold the password
    env_file: Path | None
    mode: str
    owner_pid: int
    details: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.connection.url

    @property
    def host(self) -> str:
        return self.connection.host

    @property
    def port(self) -> int:
        return self.connection.port

    @property
    def user(self) -> str:
        return self.connection.user

    @property
    def password(self) -> str:
        return self.connection.password

    @property
    def database(self) -> str:
        return self.connection.database

    @property
    def env(self) -> dict[str, str]:
        """The rendered variables (the same ones the env file holds)."""
        return dict(self.variables)

    @classmethod
    def from_record(cls, record: EnvironmentRecord) -> Environment:
        return cls(
            env_id=record.env_id,
            name=record.name,
            runtime=record.runtime,
            connection=record.to_connection(),
            variables=dict(record.variables),
            env_file=Path(record.env_file) if record.env_file else None,
            mode=record.mode,
            owner_pid=record.owner_pid,
            details=dict(record.details),
        )


def find(profile: Profile) -> Environment | None:
    """The running environment of `profile`, if there is one."""
    record = load_record(profile.env_id)
    if record is None or not record.connection or not record.variables:
        return None
    return Environment.from_record(record)


def require_running(profile: Profile) -> Environment:
    """The running environment of `profile`, or NotRunningError with the command to start it."""
    env = find(profile)
    if env is not None:
        return env
    where = profile.path or profile.name
    record = load_record(profile.env_id)
    if record is not None and record.starting:
        if is_orphan(record):
            raise NotRunningError(
                f"the environment for {where} was left half-started by envctl process "
                f"{record.owner_pid}, which is gone",
                hint=f"`envctl gc` removes it; `envctl up {where}` replaces it",
            )
        raise NotRunningError(
            f"the environment for {where} is still starting (envctl process {record.owner_pid})",
            hint="wait for that `envctl up` to finish",
        )
    raise NotRunningError(
        f"no environment for {where} is up", hint=f"start it with `envctl up {where}`"
    )
