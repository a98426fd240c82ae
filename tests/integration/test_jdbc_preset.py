"""The spring and jdbc presets, read by the real pgjdbc (Debian's libpostgresql-jdbc-java) in a
real JVM: the URL, username and password from the env file, SSL as the profile asks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from tests.conftest import envctl, unavailable, write_profile

PGJDBC = Path("/usr/share/java/postgresql.jar")  # Debian's libpostgresql-jdbc-java
PROGRAM = Path(__file__).parent / "java" / "SslInUse.java"


@pytest.fixture(scope="module")
def java() -> str:
    found = shutil.which("java")
    if found is None or shutil.which("javac") is None or not PGJDBC.exists():
        unavailable(
            "pgjdbc tests need a JDK and pgjdbc: apt install default-jdk-headless "
            "libpostgresql-jdbc-java"
        )
    return str(found)


@pytest.mark.parametrize(
    ("preset", "prefix"), [("spring", "SPRING_DATASOURCE"), ("jdbc", "JDBC_DATABASE")]
)
@pytest.mark.parametrize("ssl", ["disable", "prefer", "verify-full"])
def test_pgjdbc_connects_as_the_env_file_says(
    tmp_path: Path, docker: Any, java: str, preset: str, prefix: str, ssl: str
) -> None:
    profile = write_profile(
        tmp_path,
        f"name: jdbc\npostgres:\n  version: '15'\n  database: app db\n  ssl: {ssl}\n"
        f"env:\n  preset: {preset}\n",
    )
    try:
        result = envctl("up", str(profile))
        assert result.returncode == 0, result.stderr
        values = {k: v or "" for k, v in dotenv_values(tmp_path / ".env.test").items()}
        assert values[f"{prefix}_URL"].startswith("jdbc:postgresql://")
        run = subprocess.run(
            [java, "-cp", str(PGJDBC), str(PROGRAM), prefix],
            capture_output=True,
            text=True,
            env={**os.environ, **values, "HOME": str(tmp_path)},  # no ~/.postgresql/root.crt
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        # envctl's `prefer` server has SSL on: pgjdbc's prefer takes it.
        assert run.stdout.strip() == f"{str(ssl != 'disable').lower()} app db"
    finally:
        assert envctl("down", str(profile)).returncode == 0
