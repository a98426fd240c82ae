"""A suite gets its roles' credentials from the profile, in the env file and its environment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.conftest import envctl, write_profile

SUITE = """
import os, sys, psycopg
from dotenv import dotenv_values
from_file = dotenv_values(".env.test")
for name in ("SCRAM_TEST_PGUSER", "SCRAM_TEST_PGPASSWORD"):
    assert from_file[name] == os.environ[name], name
assert os.environ["SCRAM_TEST_PGPASSWORD"] == "Scr4m-only-here", os.environ["SCRAM_TEST_PGPASSWORD"]
with psycopg.connect(
    host=os.environ["PGHOST"], port=os.environ["PGPORT"], dbname=os.environ["PGDATABASE"],
    user=os.environ["SCRAM_TEST_PGUSER"], password=os.environ["SCRAM_TEST_PGPASSWORD"],
) as conn:
    assert conn.execute("SELECT current_user").fetchone() == ("scram_test",)
print("role credentials reached the suite")
"""


def test_role_templates_reach_the_env_file_and_the_suite(tmp_path: Path, docker: Any) -> None:
    (tmp_path / "suite.py").write_text(SUITE)
    profile = write_profile(
        tmp_path,
        "name: roles\npostgres:\n  version: '15'\n"
        "  roles:\n    - {name: scram_test, password: Scr4m-only-here}\n"
        "env:\n  file: .env.test\n  preset: [url, libpq]\n  vars:\n"
        "    SCRAM_TEST_PGUSER: '{roles.scram_test.name}'\n"
        "    SCRAM_TEST_PGPASSWORD: '{roles.scram_test.password}'\n",
    )
    result = envctl("run", str(profile), "--", sys.executable, "suite.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "role credentials reached the suite" in result.stdout
