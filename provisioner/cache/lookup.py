"""The cache at a start: the key of what this start would build, the entry that serves it, and
keeping the cluster once it is built."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.cache.keys import cache_key, enabled, mark_used
from provisioner.cache.seed_memo import remembered_seed, seed_digest
from provisioner.connection import Connection
from provisioner.profile import PostgresConfig, Profile, SeedItem
from provisioner.runtime import Runtime
from provisioner.runtime.labels import CACHE_PROFILE_LABEL
from provisioner.state import EnvironmentRecord

if TYPE_CHECKING:
    from provisioner.postgres.seed import SeedFile


def seeds_and_cache(
    profile: Profile, runtime: Runtime, state_dir: Path
) -> tuple[PostgresConfig, list[SeedFile | SeedItem], str | None, str | None]:
    """The profile's server, its seeds read, the cache key (None when not caching) and the
    entry's image on a hit.

    Seed files remembered unchanged since an earlier start are neither read nor hashed again:
    on a hit, a start then costs the same whatever the seeds' size.
    """
    pg = profile.postgres
    if enabled():
        files = [(profile.folder / item.path).resolve() for item in pg.seed if item.path]
        remembered = [remembered_seed(path) for path in files]
        known = [entry for entry in remembered if entry is not None]
        if len(known) == len(files):
            digests = [str(entry["sha256"]) for entry in known]
            key, hit = _cache_lookup(runtime, pg, profile, digests)
            if hit:
                return pg, [], key, hit
    # Read only when the cache cannot serve the start: a module for backups, and their bytes.
    from provisioner.postgres.seed import SeedFile, check_versions, inspect_seeds

    seeds = inspect_seeds(pg, profile.folder, state_dir / "seed-work")
    check_versions(seeds, pg.major)
    if not enabled():
        return pg, seeds, None, None
    digests = [
        seed_digest(seed.source, seed.info.required_major)
        for seed in seeds
        if isinstance(seed, SeedFile)
    ]
    key, hit = _cache_lookup(runtime, pg, profile, digests)
    return pg, seeds, key, hit


def _cache_lookup(
    runtime: Runtime, pg: PostgresConfig, profile: Profile, seed_digests: list[str]
) -> tuple[str | None, str | None]:
    """The cache key for this start (None if the runtime keeps no entries) and its entry."""
    folder = profile.folder
    bin_dir = pg.bin_dir if pg.bin_dir is None else (folder / pg.bin_dir).resolve()
    identity = runtime.cache.identity(pg.resolved_image(), pg.major, bin_dir)
    if identity is None:
        return None, None
    if pg.migrate is not None:
        from provisioner.migrate import inputs_digest

        # What the migrations read, by content: an edited migration file is a miss.
        seed_digests = [*seed_digests, f"migrate:{inputs_digest(profile)}"]
    key = cache_key(pg, identity, seed_digests)
    hit = runtime.cache.entry(key)
    if hit:
        mark_used(key)
    return key, hit


def cache_store(
    runtime: Runtime, record: EnvironmentRecord, connection: Connection, key: str, image: str
) -> None:
    import psycopg

    # A checkpoint first: the entry then starts without replaying WAL.
    with psycopg.connect(**connection.psycopg_kwargs(), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    labels = {CACHE_PROFILE_LABEL: record.profile or record.name}
    runtime.cache.store(record.env_id, key, image, labels)
    mark_used(key)
