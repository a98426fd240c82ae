"""Journeys of `envctl doctor` on an env file a user broke while the database is up: a DB_PORT
edited to the default 5432, a DATABASE_URL deleted. Doctor names each problem and its fix and
exits non-zero (3) until the file is right again, then exits 0.
"""

from __future__ import annotations

import pytest

from tests.journeys.conftest import Journey, no_traceback

pytestmark = pytest.mark.journey

PORT = 55444
PROFILE = f"""\
name: store
postgres:
  version: "17"
  port: {PORT}
env:
  file: .env.test
  preset: medusa
"""


def test_doctor_names_what_a_user_broke_in_the_env_file(journey: Journey) -> None:
    (journey.workdir / "envctl.yaml").write_text(PROFILE)
    up = journey.envctl("up", "envctl.yaml")
    assert up.returncode == 0, up.stderr
    env_file = journey.workdir / ".env.test"
    good = env_file.read_text()
    healthy = journey.envctl("doctor", "envctl.yaml")
    assert healthy.returncode == 0, healthy.stderr
    assert "all checks passed" in healthy.stderr

    env_file.write_text(good.replace(f"DB_PORT={PORT}\n", "DB_PORT=5432\n"))
    wrong_port = journey.envctl("doctor", "envctl.yaml")
    assert wrong_port.returncode == 3, wrong_port.stderr
    no_traceback(wrong_port)
    assert (
        "FAIL variables agree: the variables name different settings: "
        f"port: DATABASE_URL {PORT}, DB_PORT 5432" in wrong_port.stderr
    )
    assert "nothing listens on 127.0.0.1:5432 (from DB_PORT)" in wrong_port.stderr
    assert f"fix: the database listens on {PORT}: set DB_PORT={PORT}" in wrong_port.stderr
    assert "DB_PORT (file '5432', environment '55444')" in wrong_port.stderr

    env_file.write_text(
        "".join(
            line for line in good.splitlines(keepends=True) if not line.startswith("DATABASE_URL=")
        )
    )
    no_url = journey.envctl("doctor", "envctl.yaml")
    assert no_url.returncode == 3, no_url.stderr
    no_traceback(no_url)
    assert "FAIL variables present: DATABASE_URL is missing" in no_url.stderr
    assert "DATABASE_URL (missing)" in no_url.stderr
    password = good.split("DB_PASSWORD=")[1].split("\n")[0]
    assert password not in no_url.stderr + no_url.stdout  # the fix shows the URL, masked

    by_file = journey.envctl("doctor", "--env-file", ".env.test")
    assert by_file.returncode == 3, by_file.stderr
    # Without the profile, the DB_* in the file say it is Medusa's: the same problem is named,
    # and PGSSLMODE (Medusa's too) is not taken for a libpq client that lacks PGHOST.
    assert "FAIL variables present: DATABASE_URL is missing" in by_file.stderr, by_file.stderr
    assert "PGHOST" not in by_file.stderr

    env_file.write_text(good)
    fixed = journey.envctl("doctor", "envctl.yaml")
    assert fixed.returncode == 0, fixed.stderr
    down = journey.envctl("down", "envctl.yaml")
    assert down.returncode == 0, down.stderr
    assert not env_file.exists()
