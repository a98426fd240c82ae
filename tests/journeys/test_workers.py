"""A database per test worker with real runners from the npm registry: `envctl run --workers N`
hands Jest (JEST_WORKER_ID) and Vitest (VITEST_POOL_ID) one clone of the seeded template per
worker through the setup file it writes, as the README's recipes configure them.

Each test file writes its worker's id into its database, waits so that workers overlap, and
checks it sees no other worker's rows; the files' reports say which database each worker used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.journeys.conftest import Journey, no_traceback

pytestmark = pytest.mark.journey

PACKAGES = ("jest@30.5.2", "vitest@4.1.12", "pg@8.23.1")
PROFILE = """\
name: workers
postgres:
  version: "17"
  database: shop
  seed: [seed.sql]
env:
  file: .env.test
"""
SEED = """\
CREATE TABLE items (id int PRIMARY KEY);
INSERT INTO items VALUES (1), (2);
CREATE TABLE seen (worker text NOT NULL);
"""
# What each test file does, whichever runner loads it.
BODY = """\
test("this worker's own database", async () => {
  const me = process.env.JEST_WORKER_ID || process.env.VITEST_POOL_ID;
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  await client.query("INSERT INTO seen (worker) VALUES ($1)", [me]);
  await new Promise((done) => setTimeout(done, 1500));  // the other workers run meanwhile
  const { rows } = await client.query(
    "SELECT current_database() AS db, array_agg(DISTINCT worker) AS workers, " +
    "(SELECT count(*) FROM items)::int AS items FROM seen");
  await client.end();
  const pgdatabase = process.env.PGDATABASE;
  appendFileSync("results.jsonl", JSON.stringify({ me, pgdatabase, ...rows[0] }) + "\\n");
  expect(rows[0].workers).toEqual([me]);
  expect(rows[0].items).toBe(2);
});
"""
JEST_FILE = 'const { Client } = require("pg");\nconst { appendFileSync } = require("node:fs");\n'
VITEST_FILE = (
    'import { test, expect } from "vitest";\nimport pg from "pg";\n'
    'import { appendFileSync } from "node:fs";\nconst { Client } = pg;\n'
)
# The README's recipes.
JEST_CONFIG = (
    "module.exports = {\n"
    "  setupFiles: process.env.ENVCTL_WORKER_SETUP ? [process.env.ENVCTL_WORKER_SETUP] : [],\n"
    "};\n"
)
VITEST_CONFIG = (
    'import { defineConfig } from "vitest/config";\n'
    "export default defineConfig({ test: {\n"
    "  setupFiles: process.env.ENVCTL_WORKER_SETUP_ESM\n"
    "    ? [process.env.ENVCTL_WORKER_SETUP_ESM] : [],\n"
    "} });\n"
)
RUNNERS = {
    "jest": (
        "jest.config.js",
        JEST_CONFIG,
        ".test.js",
        JEST_FILE,
        ["npx", "jest", "--maxWorkers=2"],
    ),
    "vitest": (
        "vitest.config.mjs",
        VITEST_CONFIG,
        ".test.mjs",
        VITEST_FILE,
        ["npx", "vitest", "run", "--pool=forks", "--maxWorkers=2"],
    ),
}


@pytest.fixture(scope="session")
def node_runners(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """node_modules with Jest, Vitest and node-postgres, installed from the npm registry."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.fail("node and npm are needed for the runners' journeys (`.ci/run` installs them)")
    folder = tmp_path_factory.mktemp("runners")
    (folder / "package.json").write_text('{"name": "runners", "private": true}\n')
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", *PACKAGES],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return folder / "node_modules"


def _project(journey: Journey, runner: str, node_modules: Path, files: int = 4) -> list[str]:
    config_name, config, suffix, head, command = RUNNERS[runner]
    work = journey.workdir
    (work / "envctl.yaml").write_text(PROFILE)
    (work / "seed.sql").write_text(SEED)
    (work / "package.json").write_text('{"name": "app", "private": true}\n')
    os.symlink(node_modules, work / "node_modules")
    (work / config_name).write_text(config)
    for index in range(1, files + 1):
        (work / f"t{index}{suffix}").write_text(head + BODY)
    return command


@pytest.mark.parametrize("runner", ["jest", "vitest"])
def test_each_worker_of_the_runner_gets_its_own_database(
    journey: Journey, node_runners: Path, runner: str
) -> None:
    command = _project(journey, runner, node_runners)
    run = journey.envctl("run", "envctl.yaml", "--workers", "2", "--", *command, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "cloned 2 worker databases: shop_w1 ... shop_w2" in run.stderr
    results = [json.loads(line) for line in (journey.workdir / "results.jsonl").read_text().split()]
    assert len(results) == 4
    databases = {row["me"]: row["db"] for row in results}
    # Both workers ran, each in the clone named for it; every variable pointed there.
    assert databases == {"1": "shop_w1", "2": "shop_w2"}, results
    assert all(row["pgdatabase"] == row["db"] for row in results), results


def test_more_workers_than_databases_is_a_clear_failure(
    journey: Journey, node_runners: Path
) -> None:
    command = _project(journey, "jest", node_runners)
    run = journey.envctl("run", "envctl.yaml", "--workers", "1", "--", *command, timeout=300)
    assert run.returncode != 0
    assert (
        "envctl made 1 worker databases, but this is worker 2: run envctl with --workers 2 or "
        "more, or give the runner at most 1 workers" in run.stdout + run.stderr
    )


def test_a_bad_worker_count_is_refused_before_anything_starts(journey: Journey) -> None:
    (journey.workdir / "envctl.yaml").write_text(PROFILE)
    (journey.workdir / "seed.sql").write_text(SEED)
    for count in ("0", "65"):
        run = journey.envctl("run", "envctl.yaml", "--workers", count, "--", "true")
        assert run.returncode == 2, run.stderr
        assert f"--workers {count}: give 1 to 64 workers" in run.stderr
        no_traceback(run)
    assert not (journey.workdir / ".env.test").exists()


def _readme_xdist_conftest() -> str:
    """The README's pytest-xdist recipe, as a user copies it into conftest.py."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    return readme.split("pytest-xdist: the plugin's")[1].split("```python\n")[1].split("```")[0]


XDIST_TEST = """\
import json, os, time, psycopg

def test_own_database_INDEX():
    me = os.environ["PYTEST_XDIST_WORKER"]
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("INSERT INTO seen (worker) VALUES (%s)", [me])
        time.sleep(1.5)
        db, workers = conn.execute(
            "SELECT current_database(), array_agg(DISTINCT worker) FROM seen"
        ).fetchone()
    with open("results.jsonl", "a") as out:
        out.write(json.dumps({"me": me, "db": db}) + "\\n")
    assert workers == [me]
"""


def test_the_readmes_xdist_recipe_gives_each_worker_its_own_database(journey: Journey) -> None:
    work = journey.workdir
    (work / "envctl.yaml").write_text(PROFILE)
    (work / "seed.sql").write_text(SEED)
    (work / "conftest.py").write_text(_readme_xdist_conftest())
    for index in range(1, 5):
        (work / f"test_{index}.py").write_text(XDIST_TEST.replace("INDEX", str(index)))
    run = journey.envctl(
        "run", "envctl.yaml", "--workers", "2", "--", "pytest", "-n", "2", "-p", "no:cacheprovider"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    results = [json.loads(line) for line in (work / "results.jsonl").read_text().splitlines()]
    assert {row["me"]: row["db"] for row in results} == {"gw0": "shop_w1", "gw1": "shop_w2"}
