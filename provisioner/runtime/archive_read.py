"""Reading every data block of a pg_dump archive, with a pg_restore that can read it.

`pg_restore -f /dev/null ARCHIVE` writes the whole restore script, data included, to nowhere:
it decompresses every block and so finds what a restore would trip over minutes later (a
corrupt or cut-off block), without a server. The pg_restore is the archive's own major if it is
here (native first: no container to start), else the nearest newer one, which reads it too.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import InfrastructureError
from provisioner.processes import run
from provisioner.profile import PostgresConfig
from provisioner.runtime.labels import PURPOSE_LABEL

log = logging.getLogger(__name__)
_INSIDE = "/backup"
_TIMEOUT = 3600.0


@dataclass(frozen=True)
class ArchiveRead:
    """What reading every block found: `error` is pg_restore's own words, None when all read."""

    reader: str  # "pg_restore 15.18 in /usr/lib/postgresql/15/bin", "pg_restore of postgres:17"
    error: str | None


def read_every_block(archive: Path, major: int) -> ArchiveRead:
    """Run `pg_restore -f /dev/null` of `major` (or the nearest newer major here) over
    `archive` (a custom or tar file, or a directory dump's folder)."""
    from provisioner.runtime.majors import available_majors

    here = available_majors(PostgresConfig(version=str(major)), "auto")
    newer = [found for found in here.majors if found >= major]
    if not newer:
        raise InfrastructureError(
            f"no pg_restore of PostgreSQL {major} or newer is here to read {archive.name} with "
            f"(majors here: {here.describe()})",
            hint="install PostgreSQL client tools of that major, or pull the postgres image of "
            f"it (docker pull postgres:{major})",
        )
    chosen = newer[0]
    if chosen in here.native:
        return _read_natively(archive, chosen)
    return _read_in_container(archive, here.docker[chosen])


def _read_natively(archive: Path, major: int) -> ArchiveRead:
    from provisioner.runtime.binaries import find_install

    install = find_install(major)
    argv = [str(install.bin_dir / "pg_restore"), "-f", "/dev/null", str(archive)]
    log.info("reading %s with %s", archive, argv[0])
    done = run(argv, timeout=_TIMEOUT)
    reader = f"pg_restore {install.describe()}"
    return ArchiveRead(reader=reader, error=_first_error(done.stderr) if done.returncode else None)


def _read_in_container(archive: Path, image: str) -> ArchiveRead:
    from provisioner.runtime.engines import docker_client

    client = docker_client()
    from docker.errors import DockerException

    reader = f"pg_restore of image {image}"
    container = None
    try:
        container = client.containers.create(
            image,
            ["pg_restore", "-f", "/dev/null", _INSIDE],
            entrypoint=[],
            volumes={str(archive.resolve()): {"bind": _INSIDE, "mode": "ro"}},
            network_mode="none",
            labels={PURPOSE_LABEL: "read-archive"},
        )
        container.start()
        status = int(container.wait(timeout=_TIMEOUT).get("StatusCode", 1))
        stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
    except DockerException as exc:
        raise InfrastructureError(
            f"could not read {archive.name} in a container of {image}: {exc}",
            hint="check that Docker answers (envctl runtimes)",
        ) from None
    finally:
        if container is not None:
            # With its anonymous volume (the image's VOLUME): the SDK's run(remove=True) keeps it.
            with contextlib.suppress(DockerException):
                container.remove(force=True, v=True)
    if status != 0:
        return ArchiveRead(reader=reader, error=_first_error(stderr) or f"exit code {status}")
    return ArchiveRead(reader=reader, error=None)


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["pg_restore failed with no message"])[0]
