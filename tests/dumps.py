"""Real backups for tests, made by the test images' own pg_dump and pg_dumpall.

`make_dumps(client, major, folder)` starts one throwaway container of `envctl-test/postgres:MAJOR`,
loads SAMPLE_SQL into the database SAMPLE_DATABASE and writes every backup shape envctl must read
into `folder`; the container is removed before it returns, whatever happens.

To compare a restore with its source, run SAMPLE_CHECKSUM_SQL in the restored database and compare
`{name: (rows, md5)}` with EXPECTED_CHECKSUMS (the same for every major: the data is deterministic).

Plain dumps from pg_dump 17.6/16.10/15.14 and newer carry a random `\\restrict KEY` line, so two
plain dumps of the same data differ there; archives carry their creation time.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The switch tests/conftest.py reads (see image_settings there).
IMAGE_TEMPLATE = os.environ.get("ENVCTL_TEST_IMAGE_TEMPLATE") or "envctl-test/postgres:{major}"
SAMPLE_DATABASE = "shop"
SAMPLE_ROLE = "app_owner"
LARGE_OBJECT_OID = 424242
MANAGED_LABELS = {"dev.envctl.managed": "true"}

# Every dump `make_dumps` writes, by key: the file or folder name inside `folder`.
DUMP_FILES = {
    "plain": "plain.sql",
    "plain_gzip": "plain.sql.gz",
    "custom": "custom.dump",
    "custom_uncompressed": "custom-uncompressed.dump",
    "custom_piped": "custom-piped.dump",  # written to a pipe: no data offsets in its TOC
    "custom_named_tar": "really-custom.tar",  # a custom dump whose name says tar
    "tar": "backup.tar",
    "directory": "directory",
    "directory_zip_macos": "directory-macos.zip",
    "custom_in_tar": "custom-in.tar",  # a plain tar whose only member is the custom dump
    "globals": "globals.sql",
    "cluster": "cluster.sql",
}
# The format `inspect_dump` must report for each key.
EXPECTED_FORMATS = {
    "plain": "plain",
    "plain_gzip": "plain",
    "custom": "custom",
    "custom_uncompressed": "custom",
    "custom_piped": "custom",
    "custom_named_tar": "custom",
    "tar": "tar",
    "directory": "directory",
    "directory_zip_macos": "directory",
    "custom_in_tar": "custom",
    "globals": "globals",
    "cluster": "cluster",
}
CUSTOM_IN_TAR_MEMBER = "shop.dump"

SAMPLE_SQL = f"""
CREATE ROLE {SAMPLE_ROLE} NOLOGIN;
CREATE EXTENSION pgcrypto;
CREATE EXTENSION citext;
CREATE SCHEMA inventory AUTHORIZATION {SAMPLE_ROLE};

CREATE TABLE inventory.products (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku citext NOT NULL UNIQUE,
    name text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    token bytea NOT NULL
);
CREATE SEQUENCE public.order_number_seq;
CREATE TABLE public.orders (
    id serial PRIMARY KEY,
    number bigint NOT NULL DEFAULT nextval('public.order_number_seq'),
    product_id bigint NOT NULL REFERENCES inventory.products (id),
    quantity integer NOT NULL,
    placed_at timestamptz NOT NULL
);
CREATE INDEX orders_placed_at_idx ON public.orders (placed_at);
CREATE FUNCTION inventory.price_with_tax(cents integer) RETURNS numeric
    LANGUAGE sql IMMUTABLE AS $$ SELECT round(cents * 1.2 / 100, 2) $$;
CREATE VIEW public.order_totals AS
    SELECT o.id, o.quantity * p.price_cents AS total_cents
    FROM public.orders o JOIN inventory.products p ON p.id = o.product_id;

ALTER TABLE inventory.products OWNER TO {SAMPLE_ROLE};
ALTER TABLE public.orders OWNER TO {SAMPLE_ROLE};
ALTER SEQUENCE public.order_number_seq OWNER TO {SAMPLE_ROLE};
ALTER VIEW public.order_totals OWNER TO {SAMPLE_ROLE};
ALTER FUNCTION inventory.price_with_tax(integer) OWNER TO {SAMPLE_ROLE};

INSERT INTO inventory.products (sku, name, price_cents, token)
SELECT 'SKU-' || g, 'Product ' || g, (g * 37) % 10000, digest('p' || g, 'sha256')
FROM generate_series(1, 500) AS g;
INSERT INTO public.orders (product_id, quantity, placed_at)
SELECT g % 500 + 1, g % 7 + 1, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(1, 3000) AS g;
SELECT lo_from_bytea({LARGE_OBJECT_OID}, convert_to('a large object for envctl', 'UTF8'));
ALTER LARGE OBJECT {LARGE_OBJECT_OID} OWNER TO {SAMPLE_ROLE};
"""

# Row counts and an md5 over each table's ordered rows, rendered independently of the session's
# TimeZone, bytea_output and DateStyle; plus the large objects and the sequences' positions.
SAMPLE_CHECKSUM_SQL = """
SELECT 'inventory.products', count(*),
       md5(string_agg(concat_ws(',', id, sku, name, price_cents, encode(token, 'hex')), '|'
                      ORDER BY id))
FROM inventory.products
UNION ALL
SELECT 'public.orders', count(*),
       md5(string_agg(concat_ws(',', id, number, product_id, quantity,
                                extract(epoch FROM placed_at)::bigint), '|' ORDER BY id))
FROM public.orders
UNION ALL
SELECT 'large objects', count(*),
       md5(string_agg(oid::text || ':' || encode(lo_get(oid), 'hex'), '|' ORDER BY oid))
FROM pg_catalog.pg_largeobject_metadata
UNION ALL
SELECT 'sequences', count(*),
       md5(string_agg(schemaname || '.' || sequencename || '=' || coalesce(last_value, 0), '|'
                      ORDER BY schemaname, sequencename))
FROM pg_catalog.pg_sequences
ORDER BY 1
"""

EXPECTED_CHECKSUMS: dict[str, tuple[int, str]] = {
    "inventory.products": (500, "1f4c0a042f91f895926a386ee71564f4"),
    "large objects": (1, "29d73516e813643430e0341ede529dab"),
    "public.orders": (3000, "8ecdc3831838de11d6a7a3902bc49d0d"),
    "sequences": (3, "0981d82e40ad7cc1250eb30e0748d43d"),
}


def checksums(rows: Any) -> dict[str, tuple[int, str]]:
    """SAMPLE_CHECKSUM_SQL's rows (from psycopg or psql) as {name: (rows, md5)}."""
    return {str(name): (int(count), str(digest)) for name, count, digest in rows}


def make_dumps(
    client: Any,
    major: int,
    folder: Path,
    *,
    image: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write every backup shape of DUMP_FILES into `folder`, made by `major`'s own tools.

    One container is started (labelled with `labels`, default MANAGED_LABELS plus
    `dev.envctl.state-dir=<folder>`) and always removed before returning.
    """
    folder.mkdir(parents=True, exist_ok=True)
    all_labels = {**MANAGED_LABELS, "dev.envctl.state-dir": str(folder), **(labels or {})}
    container = client.containers.run(
        image or IMAGE_TEMPLATE.format(major=major),
        ["sleep", "infinity"],
        entrypoint=[],
        name=f"envctl-dumps-{major}-{uuid.uuid4().hex[:8]}",
        labels=all_labels,
        environment={"TZ": "UTC", "LC_ALL": "C.UTF-8"},
        detach=True,
    )
    try:
        _start_server(container)
        _run(container, [*_PSQL, "-v", "ON_ERROR_STOP=1", "-c", SAMPLE_SQL])
        found = checksums(_query(container, SAMPLE_CHECKSUM_SQL))
        if found != EXPECTED_CHECKSUMS:
            raise AssertionError(f"sample data differs on {major}: {found}")
        _run(container, ["bash", "-c", _DUMP_SCRIPT])
        _copy_out(container, "/tmp/dumps", folder)
    finally:
        container.remove(force=True, v=True)
    paths = {key: folder / name for key, name in DUMP_FILES.items()}
    shutil.copyfile(paths["custom"], paths["custom_named_tar"])
    _tar_single(paths["custom"], CUSTOM_IN_TAR_MEMBER, paths["custom_in_tar"])
    zip_like_macos(paths["directory"], paths["directory_zip_macos"])
    return paths


def zip_like_macos(directory: Path, target: Path) -> None:
    """Zip `directory` as macOS Finder's "Compress" does: a top folder plus __MACOSX/._* files."""
    top = directory.name
    apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{top}/", b"")
        archive.writestr(f"{top}/.DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(32))
        for path in sorted(directory.iterdir()):
            archive.write(path, f"{top}/{path.name}")
        archive.writestr("__MACOSX/", b"")
        archive.writestr(f"__MACOSX/{top}/", b"")
        archive.writestr(f"__MACOSX/{top}/._{top}", apple_double)
        for path in sorted(directory.iterdir()):
            archive.writestr(f"__MACOSX/{top}/._{path.name}", apple_double)


_DUMP_SCRIPT = f"""
set -euo pipefail
mkdir -p /tmp/dumps
cd /tmp/dumps
db={SAMPLE_DATABASE}
pg_dump -d "$db" -f plain.sql
pg_dump -d "$db" | gzip > plain.sql.gz
pg_dump -d "$db" -Fc -f custom.dump
pg_dump -d "$db" -Fc -Z0 -f custom-uncompressed.dump
pg_dump -d "$db" -Fc | cat > custom-piped.dump
pg_dump -d "$db" -Ft -f backup.tar
pg_dump -d "$db" -Fd -f directory
pg_dumpall --globals-only -f globals.sql
pg_dumpall -f cluster.sql
"""


_PSQL = ["psql", "-X", "-q", "-d", SAMPLE_DATABASE]


def _start_server(container: Any) -> None:
    # initdb + pg_ctl -w ourselves: a server that is ready when the command returns, no log polling
    script = f"""
set -eu
initdb -D /tmp/pgdata -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
pg_ctl -D /tmp/pgdata -w -s -l /tmp/pgdata/log \
    -o "-c fsync=off -c full_page_writes=off -c listen_addresses=''" start
createdb {SAMPLE_DATABASE}
"""
    _run(container, ["sh", "-c", script])


def _run(container: Any, argv: list[str]) -> str:
    code, output = container.exec_run(argv, user="postgres", environment={"PGUSER": "postgres"})
    text = (output or b"").decode("utf-8", errors="replace")
    if code != 0:
        raise RuntimeError(f"{argv[0]} failed in {container.name} ({code}): {text[-2000:]}")
    return text


def _query(container: Any, sql: str) -> list[list[str]]:
    text = _run(container, [*_PSQL, "-A", "-t", "-F", "\t", "-c", sql])
    return [line.split("\t") for line in text.splitlines() if line]


def _copy_out(container: Any, path: str, folder: Path) -> None:
    """Copy the container's `path` folder's contents into `folder` (files and sub-folders)."""
    stream, _ = container.get_archive(path)
    with tempfile.TemporaryFile() as spool:
        for chunk in stream:
            spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool) as archive:
            prefix = Path(path).name + "/"
            for member in archive.getmembers():
                if not member.name.startswith(prefix):
                    continue
                target = folder / member.name.removeprefix(prefix)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    source = archive.extractfile(member)
                    assert source is not None
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with source, target.open("wb") as out:
                        shutil.copyfileobj(source, out)


def _tar_single(source: Path, member: str, target: Path) -> None:
    with tarfile.open(target, "w", format=tarfile.USTAR_FORMAT) as archive:
        info = archive.gettarinfo(str(source), arcname=member)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with source.open("rb") as data:
            archive.addfile(info, data)
