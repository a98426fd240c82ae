"""A failing suite: what the server said about refused connections is shown, not only the tail."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import RuntimeUnderTest, envctl, write_profile

PASSWORD = "Secret-pw-4711"
ROLE_PASSWORD = "Role-pw-0815"
SUITE = f"""
import os, sys, psycopg
url = os.environ["DATABASE_URL"]
for wrong in (url.replace("sslmode=require", "sslmode=disable"),
              url.replace("{PASSWORD}", "not-the-password")):
    try:
        psycopg.connect(wrong).close()
    except psycopg.OperationalError:
        pass
    else:
        sys.exit("a wrong connection was let in")
with psycopg.connect(url, autocommit=True) as conn:
    # The suite's own noise afterwards: 30 lines and more, past the last 20.
    conn.execute("DO $$ BEGIN FOR i IN 1..30 LOOP RAISE LOG 'suite noise %', i; END LOOP; END $$")
    conn.execute("DO $$ BEGIN RAISE LOG 'the suite logs %', '{PASSWORD}'; END $$")
    conn.execute("DO $$ BEGIN RAISE LOG 'and the role''s %', '{ROLE_PASSWORD}'; END $$")
sys.exit(1)
"""


def test_a_failed_suite_shows_the_servers_connection_failures_before_the_tail(
    tmp_path: Path, runtime: RuntimeUnderTest
) -> None:
    suite = tmp_path / "suite.py"
    suite.write_text(SUITE)
    profile = write_profile(
        tmp_path,
        f"name: said\npostgres:\n  version: '15'\n  password: {PASSWORD}\n  ssl: require\n"
        f"  roles:\n    - {{name: app, password: {ROLE_PASSWORD}}}\n"
        "env:\n  file: null\n",
    )
    result = envctl("run", str(profile), "--", sys.executable, str(suite), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    out = result.stderr
    assert "log lines about failed connections" in out, out
    earlier, tail = out.split("the database server's last log lines", 1)
    assert "FATAL:  no pg_hba.conf entry for host" in earlier, out
    assert "rejects connection" not in earlier, "envctl's own readiness probes are not news"
    assert "no encryption" in earlier, out
    assert "FATAL:  password authentication failed for user" in earlier, out
    assert "suite noise 30" in tail and "suite noise 1\n" not in tail, out
    assert PASSWORD not in out and ROLE_PASSWORD not in out
    assert "and the role's ****" in tail, out
    assert "the suite logs ****" in tail, out
