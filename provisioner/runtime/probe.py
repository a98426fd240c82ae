"""What `envctl doctor` asks of the Docker engine, answered as plain data: which engine answers
and why (or why none does), whether an image is present, which container publishes a port.
No client of the engine leaves this module."""

from __future__ import annotations

from dataclasses import dataclass

from provisioner.errors import EnvctlError, first_line
from provisioner.runtime.docker import DockerRuntime
from provisioner.runtime.engine import EngineError
from provisioner.runtime.engines import docker_client, sdk_client, survey, unavailable


@dataclass(frozen=True)
class Sighting:
    """An engine found beside the chosen one: where, how envctl learned of it, what it said."""

    address: str
    source: str
    detail: str


@dataclass(frozen=True)
class EngineAnswer:
    """The engine that answers (address, source, detail, why it was chosen), or the error and
    hint saying why none does; and what else was found."""

    others: tuple[Sighting, ...]
    address: str = ""
    source: str = ""
    detail: str = ""
    reason: str = ""
    error: str | None = None
    hint: str | None = None


def engine_check() -> EngineAnswer:
    """Every place an engine may answer, asked; the chosen one reached by the SDK as a suite's
    tools would reach it."""
    found = survey(timeout=3, every=True)
    # What else was found (a socket that refused, Desktop's beside the default one) is
    # evidence of which engine the suite's other tools may be talking to.
    others = tuple(
        Sighting(probe.candidate.address, probe.candidate.source, probe.detail)
        for probe in found.probes
        if probe.found and probe is not found.chosen
    )
    try:
        if found.chosen is None:
            raise unavailable(found.probes)
        sdk_client(found.chosen.candidate)
    except EnvctlError as exc:
        return EngineAnswer(others, error=exc.message, hint=exc.hint)
    chosen = found.chosen.candidate
    return EngineAnswer(others, chosen.address, chosen.source, found.chosen.detail, found.reason)


def image_present(image: str) -> bool | str:
    """Whether the engine holds `image`; a str says why that cannot be told (the error's first
    line)."""
    from docker.errors import DockerException, ImageNotFound

    try:
        docker_client().images.get(image)
    except ImageNotFound:
        return False
    except DockerException as exc:
        return first_line(str(exc))
    except EnvctlError as exc:
        return first_line(exc.message)
    return True


def container_publishing(port: int) -> str | None:
    """The name of the container that publishes `port`, or None (none does, or no engine)."""
    try:
        return DockerRuntime().container_publishing(port)
    except (EnvctlError, EngineError):
        return None
