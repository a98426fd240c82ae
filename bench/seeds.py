"""Deterministic seed dumps of a chosen size, made once with the image's own pg_dump and kept.

The data is a function of the row number only (generate_series + md5), so every machine makes
the same rows. The dump is custom format without compression (`-Z0`): the file size is the
data size, so "50 MB" means 50 MB of rows to restore, plus a primary key and one secondary
index to build. Dumps are cached in bench/results/seeds/ (gitignored), one per size and major.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.measure import Progress
from bench.workspace import RESULTS, CommandFailed, Workspace, docker

SEED_DIR = RESULTS / "seeds"
FORMAT_VERSION = 1  # bump when the table or the dump options change
# One row of `items` as COPY writes it: id, sku (14), payload (96), qty, created (22), tabs.
BYTES_PER_ROW = 150
MB = 1_000_000

TABLE_SQL = """
CREATE TABLE items (
    id bigint PRIMARY KEY,
    sku text NOT NULL,
    payload text NOT NULL,
    qty integer NOT NULL,
    created timestamptz NOT NULL
);
INSERT INTO items
SELECT i,
       'sku-' || lpad(i::text, 10, '0'),
       md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text),
       i % 1000,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
FROM generate_series(1, {rows}) AS i;
CREATE INDEX items_sku ON items (sku);
"""


def seed_path(major: int, size_mb: int) -> Path:
    return SEED_DIR / f"items-{size_mb}mb-pg{major}-v{FORMAT_VERSION}.dump"


def ensure_seed(ws: Workspace, size_mb: int, progress: Progress | None = None) -> Path:
    """The cached dump of about `size_mb` MB for the workspace's major, made if missing."""
    path = seed_path(ws.major, size_mb)
    meta = path.with_suffix(".json")
    if not (path.exists() and meta.exists()):
        _make_seed(ws, size_mb, path, progress)
        # Writing hundreds of MB leaves dirty pages behind; flushing them now keeps their
        # write-back out of the first timed round.
        os.sync()
    _read_through(path)  # the first round should not be the only one reading from disk
    return path


def _make_seed(ws: Workspace, size_mb: int, path: Path, progress: Progress | None) -> None:
    meta = path.with_suffix(".json")
    SEED_DIR.mkdir(parents=True, exist_ok=True)
    rows = max(1000, size_mb * MB // BYTES_PER_ROW)
    if progress is not None:
        progress(f"seeds · generating the {size_mb} MB seed ({rows} rows) with {ws.image}")
    started = time.perf_counter()
    container = docker(
        "run",
        "-d",
        "--label",
        ws.label(),
        "-e",
        "POSTGRES_HOST_AUTH_METHOD=trust",
        "-e",
        "POSTGRES_DB=seed",
        ws.image,
        "postgres",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
    )
    ws.track(container)
    try:
        _wait_in_container(container)
        sql = TABLE_SQL.format(rows=rows)
        psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"]
        docker("exec", container, *psql, "-d", "seed", "-c", sql)
        inside = "/tmp/seed.dump"
        docker(
            "exec",
            container,
            "pg_dump",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-Fc",
            "-Z0",
            "-f",
            inside,
            "seed",
        )
        partial = path.with_suffix(".partial")
        docker("cp", f"{container}:{inside}", str(partial))
        partial.replace(path)
    finally:
        docker("rm", "-fv", container, check=False)
        ws.untrack(container)
    meta.write_text(
        json.dumps(
            {
                "rows": rows,
                "bytes": path.stat().st_size,
                "image": ws.image,
                "format_version": FORMAT_VERSION,
                "seconds_to_make": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
        + "\n"
    )


def _read_through(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(1 << 20):
            pass


@dataclass(frozen=True)
class SeedInfo:
    """What ensure_seed recorded about a dump."""

    rows: int
    bytes: int
    image: str

    def describe(self) -> str:
        return f"{self.bytes / MB:.1f} MB, {self.rows} rows, custom format, -Z0"


def seed_info(path: Path) -> SeedInfo:
    """What ensure_seed recorded about `path` when it made it."""
    data = json.loads(path.with_suffix(".json").read_text())
    return SeedInfo(rows=int(data["rows"]), bytes=int(data["bytes"]), image=str(data["image"]))


def _wait_in_container(container: str, timeout: float = 120.0) -> None:
    # Over TCP: the official image's init-time server listens on the socket only, so a TCP
    # answer means the real server is up.
    deadline = time.monotonic() + timeout
    while True:
        if docker("inspect", "-f", "{{.State.Running}}", container, check=False) != "true":
            raise CommandFailed(f"the seed container {container[:12]} stopped")
        probe = docker(
            "exec",
            container,
            "psql",
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "seed",
            "-tAc",
            "SELECT 1",
            check=False,
        )
        if probe == "1":
            return
        if time.monotonic() >= deadline:
            raise CommandFailed(f"the seed container {container[:12]} never accepted connections")
        time.sleep(0.2)
