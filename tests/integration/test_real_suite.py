"""A real third-party suite, unmodified, through `envctl run`: psycopg2's own tests over SSL.

psycopg2's sdist on PyPI ships its test suite (tests/), which reads PSYCOPG2_TESTDB and falls
back to PGHOST, PGPORT, PGUSER and PGPASSWORD; libpq, under it, reads PGSSLMODE and
PGSSLROOTCERT. The profile (tests/realsuite/psycopg2.yaml) asks for `ssl: verify-full`, so the
server takes SSL connections only and libpq checks the CA file and the host name: the suite can
pass only if every variable envctl wrote is what a real libpq client reads.

The sdist is built from source into a throwaway venv (not the psycopg2-binary wheel, whose
bundled libpq differs from the system one its test_pgconn_ptr loads with ctypes), so this needs
a C compiler, pg_config (libpq-dev) and Python's headers; missing, it skips on a laptop and
fails in CI. Skip it locally with `-m "not realsuite"`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MAJORS, ROOT, unavailable

pytestmark = [pytest.mark.realsuite, pytest.mark.timeout(1200)]

PSYCOPG2 = "psycopg2==2.9.13"
PROFILE = ROOT / "tests" / "realsuite" / "psycopg2.yaml"
# The command psycopg2's documentation (doc/src/install.rst) and Makefile (`make check`) give.
SUITE_COMMAND = [
    "python",
    "-c",
    "import tests; tests.unittest.main(defaultTest='tests.test_suite')",
    "--verbose",
]
# 749 tests, 19 skipped on Postgres 17 with libpq 15 (replication and pre-9/pre-10 ones): 730
# passed when this was written. Fewer means something envctl gives the suite went missing.
MIN_PASSED = 730
SSL_PROBE = """
import json, psycopg2
conn = psycopg2.connect("")  # only the environment, as tests/testconfig.py builds its dsn
info = {"ssl_in_use": conn.info.ssl_in_use, "protocol": conn.info.ssl_attribute("protocol")}
try:
    psycopg2.connect("", sslmode="disable")
    info["plain"] = "accepted"
except psycopg2.OperationalError as exc:
    info["plain"] = str(exc)
print(json.dumps(info))
"""


def pip(python: Path | str, *args: str, cwd: Path | None = None) -> None:
    """Run pip; a failure (no registry, no compiler) skips on a laptop and fails in CI."""
    try:
        subprocess.run(
            [str(python), "-m", "pip", "--disable-pip-version-check", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stdout + exc.stderr).strip().splitlines()[-15:])
        unavailable(f"pip {' '.join(args)} failed:\n{tail}")
    except subprocess.TimeoutExpired:
        unavailable(f"pip {' '.join(args)} took over 600 s")


@pytest.fixture(scope="session")
def psycopg2_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The pinned sdist from PyPI, downloaded once a session: (the archive, its unpacked tree)."""
    cache = tmp_path_factory.mktemp("realsuite-cache")
    pip(sys.executable, "download", "--no-deps", "--no-binary", ":all:", PSYCOPG2, "-d", str(cache))
    archives = list(cache.glob("psycopg2-*.tar.gz"))
    assert len(archives) == 1, f"pip download left {sorted(p.name for p in cache.iterdir())}"
    with tarfile.open(archives[0]) as archive:
        archive.extractall(cache, filter="data")
    source = cache / archives[0].name.removesuffix(".tar.gz")
    assert (source / "tests" / "testconfig.py").is_file(), "the sdist no longer ships tests/"
    return archives[0], source


@pytest.fixture(scope="session")
def suite_bin(tmp_path_factory: pytest.TempPathFactory, psycopg2_source: tuple[Path, Path]) -> Path:
    """A throwaway venv with psycopg2 built from that sdist; its bin folder."""
    venv = tmp_path_factory.mktemp("realsuite-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip(venv / "bin" / "python", "install", "-q", str(psycopg2_source[0]))
    return venv / "bin"


def envctl_run(suite_bin: Path, source: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """`envctl run` of the profile on the newest major under test, with the venv's python first
    on PATH, as a developer who activated it would run it."""
    env = {
        **os.environ,
        "PATH": f"{suite_bin}{os.pathsep}{os.environ['PATH']}",
        "PSYCOPG2_SOURCE": str(source),
    }
    envctl = [sys.executable, "-m", "provisioner"]
    newest = ["--postgres-version", str(max(MAJORS))]
    return subprocess.run(
        [*envctl, "run", str(PROFILE), *newest, "--", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def unittest_counts(output: str) -> dict[str, int]:
    """unittest's summary ("Ran 749 tests", "OK (skipped=19)") as counts, with `passed`."""
    ran = re.search(r"^Ran (\d+) tests? in ", output, re.MULTILINE)
    verdict = re.search(r"^(OK|FAILED)(?: \((.*)\))?$", output, re.MULTILINE)
    assert ran and verdict, f"no unittest summary in the output:\n{output[-3000:]}"
    counts = {"ran": int(ran.group(1))}
    for part in (verdict.group(2) or "").split(","):
        if "=" in part:
            name, number = part.strip().split("=")
            counts[name] = int(number)
    counts["passed"] = counts["ran"] - sum(v for k, v in counts.items() if k != "ran")
    return counts


def test_psycopg2s_own_suite_passes_unmodified_over_verified_ssl(
    docker: Any, psycopg2_source: tuple[Path, Path], suite_bin: Path
) -> None:
    result = envctl_run(suite_bin, psycopg2_source[1], *SUITE_COMMAND)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    counts = unittest_counts(output)
    assert counts["passed"] >= MIN_PASSED, counts
    # A test that needs what the profile's settings give: two-phase commit is not skipped.
    assert re.search(r"^test_tpc_commit \(.*\) \.\.\. ok$", output, re.MULTILINE), output[-3000:]


def test_the_suites_variables_connect_over_ssl_and_nothing_else_gets_in(
    docker: Any, psycopg2_source: tuple[Path, Path], suite_bin: Path
) -> None:
    result = envctl_run(suite_bin, psycopg2_source[1], "python", "-c", SSL_PROBE)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["ssl_in_use"] is True, info
    assert str(info["protocol"]).startswith("TLS"), info
    assert "no encryption" in info["plain"], info
