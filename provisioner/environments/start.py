"""A start, as the list of its steps: the cache looked up, the server planned and started, waited
for, seeded and migrated, the template made, the cluster kept, the env file written.

`up` runs it under the claim and tears everything down if any step fails. Each step saves to
the record what teardown must know before it makes anything.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner import signals
from provisioner.cache.keys import keeps, mark_used
from provisioner.cache.lookup import cache_store, seeds_and_cache
from provisioner.connection import Connection
from provisioner.envfile import EnvFileGuard, missing_folders, render_env, write_atomic
from provisioner.environments.environment import Environment
from provisioner.environments.teardown import CERTS_FOLDER, CREATED_FOLDERS, record_suite_group
from provisioner.errors import CacheNotKept
from provisioner.postgres.ready import import_client, wait_until_ready
from provisioner.postgres.ssl import ServerSsl, server_ssl
from provisioner.profile import PostgresConfig, Profile, SeedItem
from provisioner.progress import Notify
from provisioner.runtime import Runtime, ServerSpec
from provisioner.runtime.labels import environment_labels
from provisioner.state import EnvironmentRecord, connection_dict, save_record

if TYPE_CHECKING:
    from provisioner.postgres.seed import SeedFile
    from provisioner.tls import CertificateSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a start decided before the server runs: its seeds, the cache, the server's spec."""

    pg: PostgresConfig
    seeds: list[SeedFile | SeedItem]
    hit: str | None  # the cache entry this start comes from
    store: str | None  # the key this start keeps its cluster under, if it does
    image: str
    client_host: str
    ssl: ServerSsl
    spec: ServerSpec
    certs_dir: Path


def start(
    profile: Profile,
    record: EnvironmentRecord,
    runtime: Runtime,
    state_dir: Path,
    notify: Notify,
    password: str,
    *,
    makes_databases: bool = False,
) -> Environment:
    """Start the environment `record` describes and return it once it is up; with
    `makes_databases`, what runs against it will make databases from its templates."""
    plan = plan_start(profile, record, runtime, state_dir, notify, password, makes_databases)
    record = record_folders(profile, record, plan)
    record, connection, began, release = start_server(runtime, record, plan, notify)
    try:
        wait_for_server(runtime, record, connection, plan, began, notify)
    finally:
        release()
    record, connection = restore_seeds(runtime, record, connection, plan, state_dir, notify)
    migrate_and_make_template(profile, record, connection, plan, state_dir, notify)
    keep_in_cache(runtime, record, connection, plan, notify)
    return write_env_file(profile, record, connection, state_dir, notify)


def plan_start(
    profile: Profile,
    record: EnvironmentRecord,
    runtime: Runtime,
    state_dir: Path,
    notify: Notify,
    password: str,
    makes_databases: bool = False,
) -> Plan:
    """Read the seeds, look up the cache, and spell out the server to start (saying so)."""
    exposed = profile.postgres.host not in ("127.0.0.1", "::1")
    if exposed:
        notify(
            f"warning: postgres.host {profile.postgres.host} exposes the database beyond this "
            "machine's loopback; use 127.0.0.1 unless other hosts must reach it"
        )
    pg, seeds, key, hit = seeds_and_cache(profile, runtime, state_dir)
    store = key if key is not None and not hit and keeps(key) else None
    if key is not None and not (hit or store):
        mark_used(key)  # seen: the next start of the same key keeps its cluster
    image = pg.resolved_image()
    place = runtime.placement(pg.host)
    if place.warning:
        notify(place.warning)
    if (exposed or place.warning) and profile.postgres.password is not None:
        notify(
            "warning: postgres.password is set in the profile, so whoever reads the profile "
            "can log in to this exposed port; remove the key for a random password"
        )
    ssl = server_ssl(
        mode=pg.ssl.mode,
        client_cert=pg.ssl.client_cert,
        user=pg.user,
        config_dir=runtime.config_dir(record.env_id),
        # A remote engine's clients verify the certificate against the engine's host.
        extra_hostnames=(*runtime.server_names(record.env_id), place.client_host),
    )
    spec = ServerSpec(
        env_id=record.env_id,
        image=image,
        major=pg.major,
        user=pg.user,
        password=password,
        database=pg.database,
        bind_host=place.bind_host,
        port=None if pg.port == "auto" else pg.port,
        settings={**pg.server_settings(), **ssl.settings},
        labels=environment_labels(record),
        files=ssl.files,
        bin_dir=pg.bin_dir if pg.bin_dir is None else (profile.folder / pg.bin_dir).resolve(),
        locale=pg.locale,
        encoding=pg.encoding,
        cacheable=bool(hit or store),
        from_cache=hit,
        restores_seeds=bool(seeds or pg.has_seed) and not hit,
        joined=profile.test.container is not None,
        makes_databases=makes_databases or pg.template1,
    )
    cached = " from the cache" if hit else ""
    notify(f"starting Postgres {pg.version} ({runtime.name}: {runtime.describe(image)}){cached}")
    return Plan(
        pg, seeds, hit, store, image, place.client_host, ssl, spec, _certs_dir(profile, state_dir)
    )


def record_folders(profile: Profile, record: EnvironmentRecord, plan: Plan) -> EnvironmentRecord:
    """Make the folders the env file needs (and the certificates' folder), recorded before they
    are made, so that teardown, also gc's after a crash, removes them again."""
    signals.current().checkpoint()
    created = missing_folders(profile.env_file.parent) if profile.env_file else []
    details: dict[str, object] = {"certs_dir": str(plan.certs_dir)}
    if created:
        details[CREATED_FOLDERS] = [str(folder) for folder in created]
    record = dataclasses.replace(record, details=details)
    save_record(record)
    for folder in created:
        folder.mkdir(exist_ok=True)
    return record


def start_server(
    runtime: Runtime, record: EnvironmentRecord, plan: Plan, notify: Notify
) -> tuple[EnvironmentRecord, Connection, float, Callable[[], None]]:
    """Start the server and write the certificates clients need; the record gets its
    connection. Returns when the server runs, not yet when it answers, with what to call once
    it answers (StartedServer.release)."""
    began = time.monotonic()
    started = runtime.start(plan.spec, meanwhile=import_client)
    if "bin_dir" in started.details:
        notify(
            f"using PostgreSQL {started.details['postgres_version']} from "
            f"{started.details['bin_dir']} ({started.details['install']})"
        )
    client_files = _write_client_certificates(plan.ssl.certificates, plan.certs_dir)
    pg = plan.pg
    connection = Connection(
        host=plan.client_host,
        port=started.port,
        user=pg.user,
        password=plan.spec.password,
        database=pg.database,
        sslmode=pg.ssl.mode,
        **client_files,
    )
    record = dataclasses.replace(
        record,
        connection=connection_dict(connection),
        details={**record.details, **started.details},
    )
    save_record(record)
    return record, connection, began, started.release


def wait_for_server(
    runtime: Runtime,
    record: EnvironmentRecord,
    connection: Connection,
    plan: Plan,
    began: float,
    notify: Notify,
) -> None:
    """Wait until the server really accepts a connection (or says why it never will)."""
    seconds = wait_until_ready(
        connection,
        timeout=plan.pg.startup_timeout,
        server_failure=lambda: runtime.failure(record.env_id),
        log_tail=lambda: runtime.log_tail(record.env_id),
    )
    log.info("first connection after %.2fs of waiting", seconds)
    notify(f"ready on {connection.host}:{connection.port} after {time.monotonic() - began:.1f}s")


def restore_seeds(
    runtime: Runtime,
    record: EnvironmentRecord,
    connection: Connection,
    plan: Plan,
    state_dir: Path,
    notify: Notify,
) -> tuple[EnvironmentRecord, Connection]:
    """Restore the seeds (not on a cache hit), and follow the data to the database it is in."""
    pg = plan.pg
    landed = None
    if plan.spec.restores_seeds:
        signals.current().checkpoint()
        from provisioner.postgres.seed import apply_seed

        landed = apply_seed(runtime, record.env_id, connection, pg, plan.seeds, notify)
    shutil.rmtree(state_dir / "seed-work", ignore_errors=True)
    if pg.has_seed and "database" not in pg.model_fields_set:
        connection = _follow_the_data(connection, landed, notify)
        record = dataclasses.replace(record, connection=connection_dict(connection))
        save_record(record)
    return record, connection


def migrate_and_make_template(
    profile: Profile,
    record: EnvironmentRecord,
    connection: Connection,
    plan: Plan,
    state_dir: Path,
    notify: Notify,
) -> None:
    """Run the app's migrations on the seeded database, then make the template that reset,
    clones and --repeat go back to (not on a cache hit: the entry holds both)."""
    pg = plan.pg
    if not pg.has_seed or plan.hit:
        return
    if pg.migrate is not None:
        signals.current().checkpoint()
        from provisioner.migrate import run_migration

        run_migration(
            profile,
            connection,
            state_dir / "migrate.log",
            notify,
            on_start=lambda pgid: record_suite_group(record.env_id, pgid),
        )
    from provisioner.postgres.databases import make_template, make_template1

    make_template(connection)
    if pg.template1:
        make_template1(connection)


def keep_in_cache(
    runtime: Runtime,
    record: EnvironmentRecord,
    connection: Connection,
    plan: Plan,
    notify: Notify,
) -> None:
    """Keep the initialized cluster as a cache entry, when this start is the one to keep it;
    after a start from an entry, let the cache prepare the next one."""
    if plan.hit:
        runtime.cache.started_from(record.env_id, plan.hit)
    if not plan.store:
        return
    signals.current().checkpoint()
    try:
        cache_store(runtime, record, connection, plan.store, plan.image)
    except CacheNotKept as exc:
        notify(
            f"warning: the cluster was not kept in the cache ({exc.message}); "
            "the next start seeds again (ENVCTL_CACHE=off stops trying)"
        )
        return
    notify("kept the initialized cluster in the cache for the next start")


def write_env_file(
    profile: Profile,
    record: EnvironmentRecord,
    connection: Connection,
    state_dir: Path,
    notify: Notify,
) -> Environment:
    """Write the env file (the earlier one kept for teardown to put back) and mark it up."""
    variables = render_env(connection, profile.env.preset, profile.env.vars, profile.postgres.roles)
    if profile.env_file is not None:
        signals.current().checkpoint()
        EnvFileGuard(state_dir).write(profile.env_file, variables)
        notify(f"wrote {profile.env_file}")
    # Only now is it up: killed before this save, it is an orphan once this process is gone.
    record = dataclasses.replace(record, variables=variables, starting=False)
    save_record(record)
    return Environment.from_record(record)


def _follow_the_data(connection: Connection, landed: str | None, notify: Notify) -> Connection:
    """The connection to the database the seeds' data landed in, saying so when it is not
    the working database (a pg_dumpall, a `pg_dump --create` dump restore into their own).
    `landed`: what the seed found; None on a cache hit, where the template tells."""
    from provisioner.postgres.seed import seeded_database

    if landed is None:
        landed = seeded_database(connection)
    if landed == connection.database:
        return connection
    notify(
        f"the data is in database {landed} (the backup creates it): DATABASE_URL, the env "
        f"file and reset use {landed}; postgres.database in a profile chooses another"
    )
    return connection.with_database(landed)


def _certs_dir(profile: Profile, state_dir: Path) -> Path:
    # Next to the env file, so that relative tooling (and people) find the CA easily.
    if profile.env_file is not None:
        return profile.env_file.parent / CERTS_FOLDER / profile.env_id
    return state_dir / "certs"


def _write_client_certificates(
    certificates: CertificateSet | None, folder: Path
) -> dict[str, Path]:
    """Write the CA (and client certificate and key) clients need; return libpq's names."""
    if certificates is None:
        return {}
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = {"sslrootcert": folder / "ca.crt"}
    write_atomic(files["sslrootcert"], certificates.ca_cert)
    if certificates.client_cert and certificates.client_key:
        files["sslcert"] = folder / "client.crt"
        files["sslkey"] = folder / "client.key"
        write_atomic(files["sslcert"], certificates.client_cert)
        write_atomic(files["sslkey"], certificates.client_key)
    return files
