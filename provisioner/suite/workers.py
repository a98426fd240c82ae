"""A database per test worker, for any runner: `envctl run --workers N`.

Before the suite starts, N clones of the seeded template are made (`<database>_w1` ...
`<database>_wN`, tagged as clones like those of `envctl db new`). The suite gets:

- ENVCTL_WORKERS: N;
- ENVCTL_WORKERS_FILE: a private (0600) JSON file mapping each worker's id, "1" to "N", to the
  variables of its own database (every variable the presets write, as the env file has them);
- ENVCTL_WORKER_SETUP: a setup file for Jest's `setupFiles` (CommonJS), and
  ENVCTL_WORKER_SETUP_ESM: the same for Vitest's `setupFiles` (an ES module). Each one reads the
  worker's id (JEST_WORKER_ID, VITEST_POOL_ID, or ENVCTL_WORKER_ID) and puts that worker's
  variables into process.env before any test file loads.

Any other runner reads the JSON file itself (pytest-xdist: worker gwK is id K+1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from provisioner.connection import Connection
from provisioner.errors import UsageError
from provisioner.postgres.databases import clone_database, drop_database, is_clone

MAX_WORKERS = 64
FILE_VARIABLE = "ENVCTL_WORKERS_FILE"
_BODY = """\
const file = process.env.ENVCTL_WORKERS_FILE;
if (file) {
  const id = process.env.JEST_WORKER_ID || process.env.VITEST_POOL_ID
    || process.env.ENVCTL_WORKER_ID || "1";
  const workers = JSON.parse(readFileSync(file, "utf8"));
  if (!(id in workers)) {
    const made = Object.keys(workers).length;
    throw new Error(`envctl made ${made} worker databases, but this is worker ${id}: ` +
      `run envctl with --workers ${id} or more, or give the runner at most ${made} workers`);
  }
  Object.assign(process.env, workers[id]);
}
"""
SETUP_CJS = (
    "// envctl: this test worker's own database (envctl run --workers N).\n"
    '"use strict";\nconst { readFileSync } = require("node:fs");\n' + _BODY
)
SETUP_MJS = (
    "// envctl: this test worker's own database (envctl run --workers N).\n"
    'import { readFileSync } from "node:fs";\n' + _BODY
)
Render = Callable[[Connection], dict[str, str]]


def worker_names(database: str, count: int) -> list[str]:
    """The clones' names: the working database's with _w1 ... _wN (63 bytes at most)."""
    stem = database.encode()[: 63 - len(f"_w{count}")].decode(errors="ignore")
    return [f"{stem}_w{index}" for index in range(1, count + 1)]


def check_count(count: int) -> None:
    if not 1 <= count <= MAX_WORKERS:
        raise UsageError(
            f"--workers {count}: give 1 to {MAX_WORKERS} workers",
            hint="one database per worker of the test runner, e.g. --workers 4",
        )


def make_databases(connection: Connection, names: list[str]) -> None:
    """Clone the template into each name, first dropping an earlier clone of that name."""
    for name in names:
        found = is_clone(connection, name)
        if found is False:
            raise UsageError(
                f"database {name} exists and is not a clone envctl made",
                hint="the seed made it: rename it, or give postgres.database another name",
            )
        if found:
            drop_database(connection, name)
        clone_database(connection, name)


def write_files(
    folder: Path, names: list[str], server: Connection, render: Render
) -> dict[str, str]:
    """Write the workers' file and the setup files into `folder`; the suite's variables.

    `server` is the connection as the suite reaches it (loopback, or the network alias for a
    suite in a container); `render` turns a connection into the presets' variables.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    workers = {
        str(index): render(server.with_database(name)) for index, name in enumerate(names, 1)
    }
    path = folder / "workers.json"
    _write(path, json.dumps(workers, indent=2) + "\n", 0o600)
    _write(folder / "setup.cjs", SETUP_CJS, 0o644)
    _write(folder / "setup.mjs", SETUP_MJS, 0o644)
    return {
        "ENVCTL_WORKERS": str(len(names)),
        FILE_VARIABLE: str(path),
        "ENVCTL_WORKER_SETUP": str(folder / "setup.cjs"),
        "ENVCTL_WORKER_SETUP_ESM": str(folder / "setup.mjs"),
    }


def _write(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` with `mode` from the first byte (replacing what was there)."""
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.unlink(missing_ok=True)
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(draft, path)
