"""The lifecycle of an environment: up, down, and both around a block or a test suite.

`up` starts the server, waits for a real connection, writes the env file and records the
environment; any failure on the way removes whatever was created. `down` removes it all and
puts the env file back byte for byte. `environment()` does both around a `with` block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

from provisioner import github, signals
from provisioner.cache import (
    CACHED_PGDATA,
    cache_key,
    keeps,
    mark_used,
    remembered_seed,
    seed_digest,
)
from provisioner.cache import enabled as cache_enabled
from provisioner.connection import Connection, password_forms, secrets_hidden_in_errors
from provisioner.envfile import EnvFileGuard, missing_folders, render_env, write_atomic
from provisioner.errors import (
    AlreadyRunningError,
    EnvctlError,
    InfrastructureError,
    NotRunningError,
    UsageError,
    VersionUnknownError,
)
from provisioner.postgres.ready import import_client, wait_until_ready
from provisioner.postgres.ssl import server_ssl
from provisioner.processes import kill_group, process_alive, start_time
from provisioner.profile import PostgresConfig, Profile, SeedItem
from provisioner.runtime import (
    ENV_LABEL,
    LABEL_PREFIX,
    MANAGED_LABEL,
    FoundEnvironment,
    Runtime,
    ServerSpec,
)
from provisioner.state import (
    EnvironmentRecord,
    all_env_ids,
    connection_dict,
    env_state_dir,
    forget,
    is_env_id,
    load_record,
    save_record,
    state_root,
)

if TYPE_CHECKING:
    from provisioner.postgres.seed import SeedFile
    from provisioner.tls import CertificateSet

log = logging.getLogger(__name__)
Notify = Callable[[str], None]
CLAIM_FILE = "claim"
NETWORK_ALIAS = "postgres"
CERTS_FOLDER = ".envctl"
CREATED_FOLDERS = "created_folders"


def _quiet(message: str) -> None:
    log.info(message)


@dataclass(frozen=True)
class Environment:
    """A running environment as a client sees it."""

    env_id: str
    name: str
    runtime: str
    connection: Connection
    variables: dict[str, str] = field(repr=False)  # they hold the password
    env_file: Path | None
    mode: str
    owner_pid: int
    details: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.connection.url

    @property
    def host(self) -> str:
        return self.connection.host

    @property
    def port(self) -> int:
        return self.connection.port

    @property
    def user(self) -> str:
        return self.connection.user

    @property
    def password(self) -> str:
        return self.connection.password

    @property
    def database(self) -> str:
        return self.connection.database

    @property
    def env(self) -> dict[str, str]:
        """The rendered variables (the same ones the env file holds)."""
        return dict(self.variables)

    @classmethod
    def from_record(cls, record: EnvironmentRecord) -> Environment:
        return cls(
            env_id=record.env_id,
            name=record.name,
            runtime=record.runtime,
            connection=record.to_connection(),
            variables=dict(record.variables),
            env_file=Path(record.env_file) if record.env_file else None,
            mode=record.mode,
            owner_pid=record.owner_pid,
            details=dict(record.details),
        )


def open_runtime(profile: Profile, override: str | None = None, notify: Notify = _quiet) -> Runtime:
    """The runtime that serves `profile`, saying which one and why."""
    from provisioner.runtime.select import choose_runtime

    choice = choose_runtime(profile, override)
    notify(f"runtime: {choice.reason}")
    return choice.runtime


def up(
    profile: Profile,
    *,
    mode: str = "up",
    runtime: Runtime | None = None,
    runtime_override: str | None = None,
    notify: Notify = _quiet,
) -> Environment:
    """Start `profile`'s environment and return it once it accepts connections."""
    from provisioner.preflight import check_before_start

    check_before_start(profile)
    profile = settle_version(profile, runtime_override, notify)
    runtime = runtime or open_runtime(profile, runtime_override, notify)
    env_id = profile.env_id
    _claim(profile, runtime, notify)
    state_dir = env_state_dir(env_id)
    record = EnvironmentRecord(
        env_id=env_id,
        name=profile.name,
        profile=str(profile.path) if profile.path else None,
        runtime=runtime.name,
        mode=mode,
        owner_pid=os.getpid(),
        created=time.time(),
        connection={},
        env_file=str(profile.env_file) if profile.env_file else None,
        owner_start=start_time(os.getpid()),
        starting=True,
    )
    save_record(record)
    password = profile.postgres.password or secrets.token_urlsafe(18)
    github.mask(password)  # before anything could print it
    try:
        _refuse_shared_env_file(record)
        # Every error on the way may carry a server log or a tool's output: none shows it.
        with secrets_hidden_in_errors(password_forms(password)):
            return _start(profile, record, runtime, state_dir, notify, password)
    except BaseException:
        # Whatever stopped us (an error, a signal), nothing of this environment stays.
        _teardown(env_id, runtime)
        raise


def _refuse_shared_env_file(mine: EnvironmentRecord) -> None:
    """Refuse a second environment writing the env file another one holds.

    Both would merge into it and each `down` would put back what it saw before: the second
    one's "original" is the first one's variables, so the user's own file would be lost.
    Checked once this environment's record is saved, so that of two starting at once the
    later one (by start time, then id) gives way whichever checks first.
    """
    if mine.env_file is None:
        return
    for env_id in all_env_ids():
        other = load_record(env_id)
        if other is None or env_id == mine.env_id or other.env_file is None:
            continue
        if not _same_file(other.env_file, mine.env_file):
            continue
        if (other.created, other.env_id) > (mine.created, mine.env_id):
            continue
        name = other.profile or other.name
        fix = "`envctl gc`" if is_orphan(other) else f"`envctl down {name}`"
        raise AlreadyRunningError(
            f"env.file {mine.env_file} is already written by the environment of {name} "
            f"({other.env_id}): a second one would lose the file you had before",
            hint=f"remove that one first ({fix}), or give this profile its own env.file",
        )


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def _start(
    profile: Profile,
    record: EnvironmentRecord,
    runtime: Runtime,
    state_dir: Path,
    notify: Notify,
    password: str,
) -> Environment:
    exposed = profile.postgres.host not in ("127.0.0.1", "::1")
    if exposed:
        notify(
            f"warning: postgres.host {profile.postgres.host} exposes the database beyond this "
            "machine's loopback; use 127.0.0.1 unless other hosts must reach it"
        )
    pg, seeds, key, hit = _seeds_and_cache(profile, runtime, state_dir)
    # The key this start keeps its cluster under, if it does.
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
        extra_hostnames=(NETWORK_ALIAS, f"envctl-{record.env_id}", place.client_host),
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
        labels=_labels(record),
        files=ssl.files,
        bin_dir=pg.bin_dir if pg.bin_dir is None else (profile.folder / pg.bin_dir).resolve(),
        locale=pg.locale,
        encoding=pg.encoding,
    )
    if hit or store:
        spec = dataclasses.replace(spec, from_cache=hit, pgdata=CACHED_PGDATA)
    where = image if runtime.name == "docker" else "native binaries"
    cached = " from the cache" if hit else ""
    notify(f"starting Postgres {pg.version} ({runtime.name}: {where}){cached}")
    signals.current().checkpoint()
    certs_dir = _certs_dir(profile, state_dir)
    # Folders made for the env file (and the certificates next to it) are recorded before
    # they are made, so that teardown, also gc's after a crash, removes them again.
    created = missing_folders(profile.env_file.parent) if profile.env_file else []
    details: dict[str, object] = {"certs_dir": str(certs_dir)}
    if created:
        details[CREATED_FOLDERS] = [str(folder) for folder in created]
    record = _replace(record, details=details)
    save_record(record)
    for folder in created:
        folder.mkdir(exist_ok=True)
    began = time.monotonic()
    started = runtime.start(spec, meanwhile=import_client)
    if "bin_dir" in started.details:
        notify(
            f"using PostgreSQL {started.details['postgres_version']} from "
            f"{started.details['bin_dir']} ({started.details['install']})"
        )
    client_files = _write_client_certificates(ssl.certificates, certs_dir)
    connection = Connection(
        host=place.client_host,
        port=started.port,
        user=pg.user,
        password=password,
        database=pg.database,
        sslmode=pg.ssl.mode,
        **client_files,
    )
    record = _replace(
        record,
        connection=connection_dict(connection),
        details={**record.details, **started.details},
    )
    save_record(record)
    seconds = wait_until_ready(
        connection,
        timeout=pg.startup_timeout,
        server_failure=lambda: runtime.failure(record.env_id),
        log_tail=lambda: runtime.log_tail(record.env_id),
    )
    log.info("first connection after %.2fs of waiting", seconds)
    notify(f"ready on {connection.host}:{connection.port} after {time.monotonic() - began:.1f}s")
    landed = None
    if (seeds or pg.has_seed) and not hit:
        signals.current().checkpoint()
        from provisioner.postgres.seed import apply_seed

        landed = apply_seed(runtime, record.env_id, connection, pg, seeds, notify)
    shutil.rmtree(state_dir / "seed-work", ignore_errors=True)
    if pg.has_seed and "database" not in pg.model_fields_set:
        connection = _follow_the_data(connection, landed, notify)
        record = _replace(record, connection=connection_dict(connection))
        save_record(record)
    if pg.has_seed and not hit:
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
        from provisioner.postgres.databases import make_template

        make_template(connection)  # what reset, clones and --repeat go back to
    if store:
        signals.current().checkpoint()
        _cache_store(runtime, record, connection, store, image)
        notify("kept the initialized cluster in the cache for the next start")
    variables = render_env(connection, profile.env.preset, profile.env.vars, profile.postgres.roles)
    if profile.env_file is not None:
        signals.current().checkpoint()
        EnvFileGuard(state_dir).write(profile.env_file, variables)
        notify(f"wrote {profile.env_file}")
    # Only now is it up: killed before this save, it is an orphan once this process is gone.
    record = _replace(record, variables=variables, starting=False)
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


def _seeds_and_cache(
    profile: Profile, runtime: Runtime, state_dir: Path
) -> tuple[PostgresConfig, list[SeedFile | SeedItem], str | None, str | None]:
    """The profile's server, its seeds read, the cache key (None when not caching) and the
    entry's image on a hit.

    Seed files remembered unchanged since an earlier start are neither read nor hashed again:
    on a hit, a start then costs the same whatever the seeds' size.
    """
    pg = profile.postgres
    if cache_enabled():
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
    if not cache_enabled():
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
    identity = runtime.cache_identity(pg.resolved_image(), pg.major, bin_dir)
    if identity is None:
        return None, None
    if pg.migrate is not None:
        from provisioner.migrate import inputs_digest

        # What the migrations read, by content: an edited migration file is a miss.
        seed_digests = [*seed_digests, f"migrate:{inputs_digest(profile)}"]
    key = cache_key(pg, identity, seed_digests)
    hit = runtime.cached_entry(key)
    if hit:
        mark_used(key)
    return key, hit


def _cache_store(
    runtime: Runtime, record: EnvironmentRecord, connection: Connection, key: str, image: str
) -> None:
    import psycopg

    # A checkpoint first: the entry then starts without replaying WAL.
    with psycopg.connect(**connection.psycopg_kwargs(), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    labels = {"dev.envctl.cache-profile": record.profile or record.name}
    runtime.store_cache(record.env_id, key, image, labels)
    mark_used(key)


def settle_version(
    profile: Profile, runtime_override: str | None = None, notify: Notify = _quiet
) -> Profile:
    """`profile` with `version: auto` (or `nearest`) replaced by a major, before the runtime is
    chosen (which image, which binaries): the backup's own, or with `nearest` the oldest major
    here that is not older than it (saying so when it is another)."""
    pg = profile.postgres
    if pg.version not in ("auto", "nearest"):
        return profile
    needed = _backup_major(profile)
    if needed is None:
        raise VersionUnknownError(
            f"{profile.path or profile.name}: postgres.version is {pg.version} but no backup in "
            "postgres.seed says which version it came from",
            hint_template="choose one with {setting} 17 (or any major from 12 to 18), or add a "
            "pg_dump backup to postgres.seed",
        )
    chosen = needed
    if pg.version == "nearest":
        from provisioner.runtime.majors import available_majors
        from provisioner.runtime.select import wanted_runtime

        here = available_majors(pg, wanted_runtime(profile, runtime_override))
        nearest = here.nearest_newer(needed)
        if nearest is not None and nearest != needed:
            notify(
                f"the backup comes from PostgreSQL {needed}, which is not here: restoring into "
                f"{nearest}, the nearest newer major here"
            )
            chosen = nearest
    postgres = pg.model_copy(update={"version": str(chosen)})
    return profile.model_copy(update={"postgres": postgres})


def _backup_major(profile: Profile) -> int | None:
    """The newest major the profile's backups need (see DumpInfo.required_major), read from the
    seed memo when every file is unchanged since it was read, else from the files' headers."""
    files = [(profile.folder / item.path).resolve() for item in profile.postgres.seed if item.path]
    remembered = [remembered_seed(path) for path in files]
    if files and all(entry is not None and entry.get("major") for entry in remembered):
        return max(int(entry["major"]) for entry in remembered if entry is not None)
    from provisioner.postgres.dumpfile import inspect_dump

    majors = [info.required_major for info in map(inspect_dump, files) if info.required_major]
    return max(majors) if majors else None


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


def _remove_certificates(record: EnvironmentRecord | None) -> str | None:
    certs_dir = record.details.get("certs_dir") if record else None
    folder = Path(certs_dir) if certs_dir else None
    if folder is None or not folder.exists():
        return None
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        if folder.parent.name == CERTS_FOLDER:
            folder.parent.rmdir()  # only when empty: other environments may use it
    return f"certificates {folder}"


def _remove_created_folders(record: EnvironmentRecord | None) -> list[str]:
    """Remove the folders `up` made for the env file, innermost first, if they are empty."""
    created = record.details.get(CREATED_FOLDERS) if record else None
    removed = []
    for name in reversed(created if isinstance(created, list) else []):
        try:
            Path(str(name)).rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # something else was put there since: not ours to remove
            break
        removed.append(f"folder {name}")
    return removed


def _replace(record: EnvironmentRecord, **changes: object) -> EnvironmentRecord:
    from dataclasses import replace

    return replace(record, **changes)  # type: ignore[arg-type]


def _labels(record: EnvironmentRecord) -> dict[str, str]:
    return {
        MANAGED_LABEL: "true",
        ENV_LABEL: record.env_id,
        f"{LABEL_PREFIX}name": record.name,
        f"{LABEL_PREFIX}profile": record.profile or "",
        f"{LABEL_PREFIX}mode": record.mode,
        f"{LABEL_PREFIX}owner-pid": str(record.owner_pid),
        f"{LABEL_PREFIX}owner-start": str(record.owner_start or ""),
        f"{LABEL_PREFIX}state-dir": str(env_state_dir(record.env_id)),
    }


def _claim(profile: Profile, runtime: Runtime, notify: Notify) -> None:
    """Make this process the one that starts `profile`'s environment, or refuse.

    The claim is a file in the environment's state folder that only one of two `up`s at the
    same moment can create (see _create_claim); teardown removes it with the folder.
    """
    for _ in range(2):
        claim = env_state_dir(profile.env_id) / CLAIM_FILE
        if not _create_claim(claim):
            if _stale_claim(profile, claim, runtime, notify):
                continue
            _refuse(profile)
        if any(env.env_id == profile.env_id for env in runtime.environments()):
            # Resources without a claim: left by a crash before envctl recorded anything.
            notify("removing leftovers of an earlier crashed start")
            runtime.remove(profile.env_id)
        return
    _refuse(profile)


def _create_claim(claim: Path) -> bool:
    """Create `claim` holding this process's PID; False if it exists already.

    The PID is written to a file of its own first, then linked into place: a claim is never
    seen empty, which another start would take for one whose owner died before writing it.
    """
    draft = claim.with_name(f".{claim.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        os.link(draft, claim)
        return True
    except FileExistsError:
        return False
    finally:
        draft.unlink(missing_ok=True)


def _stale_claim(profile: Profile, claim: Path, runtime: Runtime, notify: Notify) -> bool:
    """Remove a claim (and its environment) whose owner is gone; True if it was stale."""
    record = load_record(profile.env_id)
    if record is not None:
        if not is_orphan(record):
            return False
        notify(f"removing an orphaned environment left by process {record.owner_pid}")
        _teardown(profile.env_id, runtime)
        return True
    try:
        owner = int(claim.read_text() or "0")
    except (OSError, ValueError):
        owner = 0
    if owner and process_alive(owner):
        return False
    _teardown(profile.env_id, runtime)
    return True


def _refuse(profile: Profile) -> NoReturn:
    record = load_record(profile.env_id)
    where = ""
    if record is not None and record.connection:
        where = f" on {record.connection['host']}:{record.connection['port']}"
    raise AlreadyRunningError(
        f"an environment for {profile.path or profile.name} is already up{where}",
        hint=f"use it, or remove it first with `envctl down {profile.path or profile.name}`",
    )


def is_orphan(record: EnvironmentRecord) -> bool:
    """An environment whose owning envctl process is gone: a `run`'s, or an `up`'s that had not
    finished starting. A finished `up` lives until `down`."""
    owned = record.mode != "up" or record.starting
    return owned and not process_alive(record.owner_pid, record.owner_start)


def find(profile: Profile) -> Environment | None:
    """The running environment of `profile`, if there is one."""
    record = load_record(profile.env_id)
    if record is None or not record.connection or not record.variables:
        return None
    return Environment.from_record(record)


def repro_profile(
    backup: Path, version: str = "auto", port: int | Literal["auto"] = "auto"
) -> Profile:
    """A profile that restores `backup` into the Postgres major it was dumped from."""
    import re

    from provisioner.profile import EnvConfig

    slug = re.sub(r"[^a-z0-9]+", "-", backup.name.lower()).strip("-")[:40] or "backup"
    return Profile(
        name=f"repro-{slug}",
        postgres=PostgresConfig(version=version, port=port, seed=[SeedItem(path=backup.resolve())]),
        env=EnvConfig(file=None),
    ).model_copy(update={"path": backup.resolve()})


def require_running(profile: Profile) -> Environment:
    """The running environment of `profile`, or NotRunningError with the command to start it."""
    env = find(profile)
    if env is not None:
        return env
    where = profile.path or profile.name
    record = load_record(profile.env_id)
    if record is not None and record.starting:
        if is_orphan(record):
            raise NotRunningError(
                f"the environment for {where} was left half-started by envctl process "
                f"{record.owner_pid}, which is gone",
                hint=f"`envctl gc` removes it; `envctl up {where}` replaces it",
            )
        raise NotRunningError(
            f"the environment for {where} is still starting (envctl process {record.owner_pid})",
            hint="wait for that `envctl up` to finish",
        )
    raise NotRunningError(
        f"no environment for {where} is up", hint=f"start it with `envctl up {where}`"
    )


def reset(env: Environment) -> float:
    """Put the working database back to its seeded state; return the seconds it took."""
    from provisioner.postgres.databases import reset_database

    return reset_database(env.connection)


def dump(env: Environment, output: Path, fmt: str = "custom") -> Path:
    """Write a backup of the running environment's database to `output` (mode 0600)."""
    import tempfile

    from provisioner.runtime.select import runtime_named

    check_dump_output(output)
    runtime = runtime_named(env.runtime)
    # An empty folder copied in is one the server's user may write to, in every runtime.
    with tempfile.TemporaryDirectory(prefix="envctl-dump-") as empty:
        folder = runtime.copy_in(env.env_id, Path(empty))
    inside = f"{folder}/backup"
    flag = {"custom": "-Fc", "plain": "-Fp"}[fmt]
    result = runtime.exec(
        env.env_id,
        ["pg_dump", flag, "--no-password", "-U", env.user, "-d", env.database, "-f", inside],
    )
    if result.exit_code != 0:
        raise InfrastructureError(f"pg_dump failed: {result.output.strip()[-500:]}")
    partial = output.with_name(f".{output.name}.envctl-tmp")
    try:
        runtime.copy_out(env.env_id, inside, partial)
        partial.chmod(0o600)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def check_dump_output(output: Path) -> None:
    """Refuse an output that cannot be written, before pg_dump spends its time on the backup."""
    folder = output.parent
    if output.is_dir():
        raise UsageError(
            f"{output} is a folder, not a backup file", hint=f"e.g. -o {output / 'backup.dump'}"
        )
    if not folder.is_dir():
        raise UsageError(
            f"cannot write {output}: the folder {folder} does not exist",
            hint=f"create it first (mkdir -p {folder}) or choose another -o path",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            f"cannot write {output}: the folder {folder} is not writable",
            hint="choose another -o path",
        )


def down(env_id: str, runtime: Runtime | None = None) -> list[str]:
    """Remove the environment `env_id` and restore its env file; return what was removed."""
    from provisioner.runtime.select import runtime_named

    if runtime is None:
        record = load_record(env_id)
        runtime = runtime_named(record.runtime if record else "docker")
    return _teardown(env_id, runtime)


SUITE_GROUPS = "suite_groups"
SUITE_GRACE_SECONDS = 5.0


def record_suite_group(env_id: str, pgid: int) -> None:
    """Remember a suite's process group, so that teardown and `gc` stop what is left of it."""
    record = load_record(env_id)
    if record is None:
        return
    groups = [*record.details.get(SUITE_GROUPS, []), [pgid, start_time(pgid)]]
    save_record(_replace(record, details={**record.details, SUITE_GROUPS: groups}))


def _stop_suites(record: EnvironmentRecord | None) -> list[str]:
    stopped = []
    for pgid, leader_start in record.details.get(SUITE_GROUPS, []) if record else []:
        if kill_group(int(pgid), leader_start, grace=SUITE_GRACE_SECONDS):
            stopped.append(f"suite process group {pgid}")
    return stopped


def _teardown(env_id: str, runtime: Runtime) -> list[str]:
    record = load_record(env_id)
    # The suite first: it would only see its database vanish.
    suites = _stop_suites(record)
    try:
        removed = runtime.remove(env_id)
    except EnvctlError as exc:
        # The server could not be removed (the engine is gone): still put the user's files back,
        # and keep the record so that `envctl gc` can finish the job later.
        failure: EnvctlError | None = exc
        removed = []
    else:
        failure = None
    removed = suites + removed
    restored = EnvFileGuard(env_state_dir(env_id)).restore()
    if restored is not None:
        removed.append(str(restored))
    certificates = _remove_certificates(record)
    if certificates is not None:
        removed.append(certificates)
    removed += _remove_created_folders(record)
    if failure is not None:
        raise failure
    forget(env_id)
    return removed


@dataclass(frozen=True)
class Survey:
    """One environment as `status` shows it and `gc` judges it: one definition for both."""

    env_id: str
    runtime: Runtime | None  # the answering runtime that holds it, if any
    record: EnvironmentRecord | None
    found: FoundEnvironment | None
    mine: bool  # of this state folder
    orphan: bool


def survey() -> list[Survey]:
    """Every environment of this state folder, and others' that are abandoned.

    A `run` environment is an orphan when its envctl process is gone; an `up` environment
    never is until `down`. Another state folder's environment (another runner's HOME on a
    shared engine) is left alone unless that folder is gone and its owner too.
    """
    from provisioner.runtime.select import available_runtimes

    envs = state_root() / "envs"
    rows: dict[str, Survey] = {}
    runtimes = available_runtimes()
    for runtime in runtimes:
        for found in runtime.environments():
            if not is_env_id(found.env_id):
                continue  # not an id envctl makes: nothing of ours
            state_dir = found.labels.get(f"{LABEL_PREFIX}state-dir", "")
            mine = bool(state_dir) and Path(state_dir).parent == envs
            record = load_record(found.env_id) if mine else None
            if record is not None:
                orphan = is_orphan(record)
            else:
                owner = int(found.labels.get(f"{LABEL_PREFIX}owner-pid", "0") or 0)
                started = found.labels.get(f"{LABEL_PREFIX}owner-start", "")
                orphan = mine or (
                    not Path(state_dir).exists()
                    and found.labels.get(f"{LABEL_PREFIX}mode") != "up"
                    and not process_alive(owner, int(started) if started.isdigit() else None)
                )
            rows[found.env_id] = Survey(found.env_id, runtime, record, found, mine, orphan)
    by_name = {runtime.name: runtime for runtime in runtimes}
    for env_id in all_env_ids():
        if env_id in rows and rows[env_id].mine:
            continue
        record = load_record(env_id)
        # Its runtime answers and holds nothing of it: only the record is left.
        answering = by_name.get(record.runtime if record else "docker")
        orphan = answering is not None and (record is None or is_orphan(record))
        rows[env_id] = Survey(env_id, answering, record, None, True, orphan)
    return [rows[env_id] for env_id in sorted(rows)]


def find_orphans() -> list[tuple[str, Runtime, bool]]:
    """Environments `gc` removes: (env_id, runtime, has a record in this state folder)."""
    return [
        (row.env_id, row.runtime, row.mine)
        for row in survey()
        if row.orphan and row.runtime is not None
    ]


def collect_garbage(notify: Notify = _quiet) -> list[str]:
    """Remove every orphan: servers, networks, certificates; restore their env files."""
    removed: list[str] = []
    failures: list[EnvctlError] = []
    for env_id, runtime, recorded in find_orphans():
        notify(f"removing orphaned environment {env_id}")
        try:
            removed += _teardown(env_id, runtime) if recorded else runtime.remove(env_id)
        except EnvctlError as exc:
            # The others still go; this one keeps its record for the next `gc`.
            notify(f"could not remove {env_id}: {exc.message}")
            failures.append(exc)
    if failures:
        raise failures[0]
    return removed


@contextlib.contextmanager
def environment(
    profile: Profile,
    *,
    notify: Notify = _quiet,
    keep: bool = False,
    runtime_override: str | None = None,
) -> Iterator[Environment]:
    """Bring `profile` up for the `with` block and always tear it down afterwards."""
    profile = settle_version(profile, runtime_override, notify)
    runtime = open_runtime(profile, runtime_override, notify)
    env = up(profile, mode="run", runtime=runtime, notify=notify)
    try:
        yield env
    finally:
        if keep:
            _mark_kept(env)
        else:
            notify("removing the environment")
            _teardown(env.env_id, runtime)


def _mark_kept(env: Environment) -> None:
    # A kept environment is no longer owned by this process: it lives until `envctl down`.
    record = load_record(env.env_id)
    if record is None:
        raise InfrastructureError(f"the record of environment {env.env_id} is gone")
    save_record(_replace(record, mode="up"))
