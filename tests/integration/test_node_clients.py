"""node-postgres, reading only what envctl wrote, agrees with the server in every SSL mode.

This is the failure envctl exists to end: Medusa's runner builds its client from DB_* and lets
PGSSLMODE decide SSL, while the app reads DATABASE_URL; node-postgres treats sslmode=require as
full verification. Both clients are real node-postgres (pg 8.23.1 from npm).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from provisioner.environments import environment
from provisioner.profile import load_profile
from tests.conftest import unavailable, write_profile

pytestmark = pytest.mark.docker

NODE_PG = "pg@8.23.1"
CLIENT = """
const { Client } = require("pg");
const how = process.argv[2];
const config = how === "url"
  ? { connectionString: process.env.DATABASE_URL }
  : how === "pgenv"
  ? {}  // PG* from the environment only, as node-postgres reads them
  : {  // as @medusajs/test-utils builds it: DB_* only, no ssl option (PGSSLMODE decides)
      host: process.env.DB_HOST, port: Number(process.env.DB_PORT),
      user: process.env.DB_USERNAME, password: process.env.DB_PASSWORD, database: "postgres",
    };
const client = new Client(config);
client.connect()
  .then(() => client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
  .then((r) => { console.log(JSON.stringify({ ssl: r.rows[0].ssl })); return client.end(); })
  .catch((e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1); });
"""


@pytest.fixture(scope="session")
def node_pg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with node-postgres installed from the npm registry."""
    if not (shutil.which("node") and shutil.which("npm")):
        unavailable("node and npm are needed for the node-postgres tests")
    folder = tmp_path_factory.mktemp("node-pg")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", NODE_PG],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (folder / "client.js").write_text(CLIENT)
    return folder


def run_node(folder: Path, how: str, env_file: Path) -> dict[str, Any]:
    # Only what envctl wrote, plus PATH: nothing of the test's own environment leaks in.
    variables = {k: v or "" for k, v in dotenv_values(env_file).items()}
    result = subprocess.run(
        ["node", "client.js", how],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], **variables},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("mode", "expect_ssl"),
    [
        ("disable", False),
        ("prefer", True),
        ("require", True),
        ("verify-ca", True),
        ("verify-full", True),
    ],
)
def test_node_postgres_connects_as_the_app_and_as_medusas_runner(
    tmp_path: Path, docker: Any, node_pg: Path, mode: str, expect_ssl: bool
) -> None:
    profile = write_profile(
        tmp_path,
        f"name: node\npostgres:\n  version: '15'\n  ssl: {mode}\n"
        "env:\n  file: .env.test\n  preset: medusa\n",
    )
    with environment(load_profile(profile)):
        env_file = tmp_path / ".env.test"
        assert run_node(node_pg, "url", env_file) == {"ssl": expect_ssl}
        assert run_node(node_pg, "medusa", env_file) == {"ssl": expect_ssl}


@pytest.mark.parametrize("mode", ["prefer", "verify-full"])
def test_the_node_preset_reaches_node_postgres_with_the_ca(
    tmp_path: Path, docker: Any, node_pg: Path, mode: str
) -> None:
    """PGSSLMODE means verified SSL to node-postgres: NODE_EXTRA_CA_CERTS has Node trust the CA."""
    profile = write_profile(
        tmp_path,
        f"name: node\npostgres:\n  version: '15'\n  ssl: {mode}\n"
        "env:\n  file: .env.test\n  preset: node\n",
    )
    with environment(load_profile(profile)):
        env_file = tmp_path / ".env.test"
        assert "NODE_EXTRA_CA_CERTS=" in env_file.read_text()
        assert run_node(node_pg, "url", env_file) == {"ssl": True}
        assert run_node(node_pg, "pgenv", env_file) == {"ssl": True}


def test_the_seed_failure_is_what_a_mismatch_gives(
    tmp_path: Path, docker: Any, node_pg: Path
) -> None:
    """Without envctl's PGSSLMODE, node-postgres insists on SSL against a server without it."""
    profile = write_profile(
        tmp_path,
        "name: seed\npostgres:\n  version: '15'\n  ssl: disable\n"
        "env:\n  file: .env.test\n  preset: medusa\n",
    )
    with environment(load_profile(profile)):
        env_file = tmp_path / ".env.test"
        text = env_file.read_text().replace("PGSSLMODE=disable", "PGSSLMODE=require")
        env_file.write_text(text)
        result = run_node(node_pg, "medusa", env_file)
        assert result == {"error": "The server does not support SSL connections"}
