"""Choosing where an environment's server runs: Docker, or native Postgres binaries."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from provisioner.errors import DockerUnavailableError, EnvctlError, UsageError
from provisioner.profile import Profile
from provisioner.runtime import Runtime

RUNTIME_VARIABLE = "ENVCTL_RUNTIME"
RUNTIMES = ("auto", "docker", "native")
AUTO_PING_TIMEOUT = 1.5


@dataclass(frozen=True)
class Choice:
    """A runtime and the one-line reason it was chosen."""

    runtime: Runtime
    reason: str


def wanted_runtime(profile: Profile | None, override: str | None = None) -> str:
    """The runtime asked for: --runtime, else ENVCTL_RUNTIME, else the profile's (auto)."""
    wanted = (
        override or os.environ.get(RUNTIME_VARIABLE) or (profile.runtime if profile else "auto")
    )
    if wanted not in RUNTIMES:
        source = "--runtime" if override else RUNTIME_VARIABLE
        raise UsageError(f"{source}={wanted} is not a runtime", hint="use auto, docker or native")
    return wanted


def choose_runtime(profile: Profile, override: str | None = None) -> Choice:
    """The runtime for `profile`; `auto` prefers Docker when it answers and has the image."""
    wanted = wanted_runtime(profile, override)
    if wanted == "docker":
        return Choice(runtime_named("docker"), "docker, as asked")
    if wanted == "native":
        return Choice(runtime_named("native"), "native, as asked")
    from provisioner.runtime.docker import DockerRuntime, docker_engine

    try:
        runtime = DockerRuntime(docker_engine(timeout=AUTO_PING_TIMEOUT))
    except DockerUnavailableError as exc:
        return Choice(runtime_named("native"), f"native, because {exc.message}")
    image = profile.postgres.resolved_image()
    try:
        runtime.ensure_image(image)
    except EnvctlError as exc:
        return Choice(runtime_named("native"), f"native, because {exc.message}")
    return Choice(runtime, f"docker, because the engine answers and has {image}")


def runtime_named(name: str) -> Runtime:
    """A runtime by name (as recorded for a running environment)."""
    if name == "native":
        from provisioner.runtime.native import NativeRuntime

        return NativeRuntime()
    from provisioner.runtime.docker import DockerRuntime

    return DockerRuntime()


def available_runtimes() -> list[Runtime]:
    """Every runtime that can answer now (Docker only when its engine does)."""
    runtimes: list[Runtime] = []
    with contextlib.suppress(DockerUnavailableError):
        runtimes.append(runtime_named("docker"))
    runtimes.append(runtime_named("native"))
    return runtimes
