"""What a command names: the running environment of a profile or of a backup started with
`envctl repro`, an environment id, a profile with its version overridden."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.errors import (
    UsageError,
)

if TYPE_CHECKING:
    from provisioner.api import RunningEnvironment
    from provisioner.environments import Environment


def running_environment(target: Path) -> Environment:
    """The running environment of a profile, or of a backup started with `envctl repro` (as
    `down` takes them)."""
    return running_with_profile(target).environment


def running_with_profile(target: Path) -> RunningEnvironment:
    from provisioner.api import RunningEnvironment
    from provisioner.environments import find, require_running
    from provisioner.errors import NotRunningError, ProfileError
    from provisioner.profile import load_profile, repro_profile

    backup = repro_profile(target) if target.exists() else None
    found = find(backup) if backup is not None else None
    if backup is not None and found is not None:
        return RunningEnvironment(backup, found)
    try:
        profile = load_profile(target)
    except ProfileError:
        if backup is None or target.suffix in (".yaml", ".yml"):
            raise
        raise NotRunningError(
            f"no environment for {target} is up", hint=f"start it with `envctl repro {target}`"
        ) from None
    return RunningEnvironment(profile, require_running(profile))


def env_id_of(target: str) -> str:
    from provisioner.profile import load_profile, repro_profile
    from provisioner.state import checked_env_id

    path = Path(target)
    if path.suffix in (".yaml", ".yml"):
        return load_profile(path).env_id
    if path.exists():
        return repro_profile(path).env_id  # a backup started with `envctl repro`
    # Neither a profile nor a backup: only envctl's own id shape may name what `down` removes.
    return checked_env_id(target)


def with_version(profile: Any, version: str | None) -> Any:
    """`profile` with postgres.version replaced (validated like the profile's own)."""
    from pydantic import ValidationError

    from provisioner.profile import PostgresConfig

    if version is None:
        return profile
    try:
        pg = PostgresConfig.model_validate(
            {**(profile.postgres.model_dump() if profile else {}), "version": version}
        )
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise UsageError(f"--postgres-version {version}: {message}") from None
    return profile.model_copy(update={"postgres": pg}) if profile else None
