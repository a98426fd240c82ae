"""Which PostgreSQL majors can run here now: local Docker images of the image template, and
native installs. Asked when a backup's own major is missing, to say what would work instead."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from provisioner.errors import DockerUnavailableError, EnvctlError
from provisioner.profile import SUPPORTED_MAJORS, PostgresConfig


@dataclass(frozen=True)
class AvailableMajors:
    """The majors each runtime has here: major -> image (Docker) or install (native)."""

    docker: dict[int, str] = field(default_factory=dict)
    native: dict[int, str] = field(default_factory=dict)

    @property
    def majors(self) -> list[int]:
        """Every major some runtime has, oldest first."""
        return sorted({*self.docker, *self.native})

    def nearest_newer(self, major: int) -> int | None:
        """`major` itself if it is here, else the oldest newer major that is; None if none."""
        return next((found for found in self.majors if found >= major), None)

    def describe(self) -> str:
        """E.g. "15 (image postgres:15; native 15.14 in /usr/lib/...), 17 (image postgres:17)"."""
        if not self.majors:
            return "none"
        parts = []
        for major in self.majors:
            where = []
            if major in self.docker:
                where.append(f"image {self.docker[major]}")
            if major in self.native:
                where.append(f"native {self.native[major]}")
            parts.append(f"{major} ({'; '.join(where)})")
        return ", ".join(parts)


def available_majors(pg: PostgresConfig, runtime: str) -> AvailableMajors:
    """The majors `runtime` (auto, docker or native) can start for `pg` without a download.

    Docker counts the local images the image template names for each supported major (a
    profile's fixed `postgres.image` is one image of unknown major: it counts none); native
    counts the installs found in the usual places.
    """
    docker: dict[int, str] = {}
    native: dict[int, str] = {}
    if runtime in ("auto", "docker") and pg.image is None:
        docker = _local_images(pg)
    if runtime in ("auto", "native") and pg.bin_dir is None:
        from provisioner.runtime.binaries import find_installs

        for install in find_installs():
            native.setdefault(install.major, f"{install.version} in {install.bin_dir}")
    return AvailableMajors(docker=docker, native=native)


def _local_images(pg: PostgresConfig) -> dict[int, str]:
    from provisioner.runtime.engine import EngineError
    from provisioner.runtime.engines import docker_engine

    with contextlib.suppress(DockerUnavailableError):
        engine = docker_engine(timeout=1.5)
        found = {}
        for major in SUPPORTED_MAJORS:
            try:
                image = pg.model_copy(update={"version": str(major)}).resolved_image()
                present = engine.image(image) is not None
            except (EnvctlError, EngineError):
                continue
            if present:
                found[major] = image
        return found
    return {}
