"""envctl: declarative, disposable Postgres test environments.

The public Python API; the names are loaded on first use, so that `envctl --help` stays fast.

    import provisioner

    with provisioner.environment("profiles/quickstart.yaml") as env:
        print(env.url)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from provisioner.errors import (
    AlreadyRunningError,
    DockerUnavailableError,
    EnvctlError,
    InfrastructureError,
    NotRunningError,
    PortInUseError,
    ProfileError,
    ReadinessTimeoutError,
    SeedError,
    UsageError,
)

if TYPE_CHECKING:
    from provisioner.api import ClonedDatabase, RunningEnvironment, environment
    from provisioner.profile import Profile, load_profile
    from provisioner.schema import profile_json_schema

__all__ = [
    "AlreadyRunningError",
    "ClonedDatabase",
    "DockerUnavailableError",
    "EnvctlError",
    "InfrastructureError",
    "NotRunningError",
    "PortInUseError",
    "Profile",
    "ProfileError",
    "ReadinessTimeoutError",
    "RunningEnvironment",
    "SeedError",
    "UsageError",
    "environment",
    "load_profile",
    "profile_json_schema",
]

_LAZY = {
    "ClonedDatabase": "provisioner.api",
    "RunningEnvironment": "provisioner.api",
    "environment": "provisioner.api",
    "Profile": "provisioner.profile",
    "load_profile": "provisioner.profile",
    "profile_json_schema": "provisioner.schema",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'provisioner' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
