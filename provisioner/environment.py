"""The lifecycle of an environment: up, down, and both around a block or a test suite.

`up` starts the server, waits for a real connection, writes the env file and records the
environment; any failure on the way removes whatever was created. `down` removes it all and
puts the env file back byte for byte. `environment()` does both around a `with` block.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from provisioner import signals
from provisioner.connection import Connection
from provisioner.envfile import EnvFileGuard, render_env, write_atomic
from provisioner.errors import AlreadyRunningError, InfrastructureError
from provisioner.postgres.ready import wait_until_ready
from provisioner.postgres.ssl import server_ssl
from provisioner.profile import Profile
from provisioner.runtime import ENV_LABEL, LABEL_PREFIX, MANAGED_LABEL, Runtime, ServerSpec
from provisioner.state import (
    EnvironmentRecord,
    connection_dict,
    env_state_dir,
    forget,
    load_record,
    process_alive,
    save_record,
)
from provisioner.tls import CertificateSet

log = logging.getLogger(__name__)
Notify = Callable[[str], None]
NETWORK_ALIAS = "postgres"
CERTS_FOLDER = ".envctl"


def _quiet(message: str) -> None:
    log.info(message)


@dataclass(frozen=True)
class Environment:
    """A running environment as a client sees it."""

    env_id: str
    name: str
    runtime: str
    connection: Connection
    variables: dict[str, str]
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
    runtime = runtime or open_runtime(profile, runtime_override, notify)
    env_id = profile.env_id
    _refuse_twin(profile, runtime, notify)
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
    )
    save_record(record)
    try:
        return _start(profile, record, runtime, state_dir, notify)
    except BaseException:
        # Whatever stopped us (an error, a signal), nothing of this environment stays.
        _teardown(env_id, runtime)
        raise


def _start(
    profile: Profile,
    record: EnvironmentRecord,
    runtime: Runtime,
    state_dir: Path,
    notify: Notify,
) -> Environment:
    pg = profile.postgres
    image = pg.resolved_image()
    password = pg.password or secrets.token_urlsafe(18)
    ssl = server_ssl(
        mode=pg.ssl.mode,
        client_cert=pg.ssl.client_cert,
        user=pg.user,
        config_dir=runtime.config_dir(record.env_id),
        extra_hostnames=(NETWORK_ALIAS, f"envctl-{record.env_id}"),
    )
    spec = ServerSpec(
        env_id=record.env_id,
        image=image,
        major=pg.major,
        user=pg.user,
        password=password,
        database=pg.database,
        bind_host=pg.host,
        port=None if pg.port == "auto" else pg.port,
        settings={**pg.server_settings(), **ssl.settings},
        labels=_labels(record),
        files=ssl.files,
        network_alias=NETWORK_ALIAS,
        bin_dir=pg.bin_dir if pg.bin_dir is None else (profile.folder / pg.bin_dir).resolve(),
    )
    notify(f"starting Postgres {pg.version} ({runtime.name}: {image})")
    signals.current().checkpoint()
    certs_dir = _certs_dir(profile, state_dir)
    record = _replace(record, details={"certs_dir": str(certs_dir)})
    save_record(record)
    started = runtime.start(spec)
    client_files = _write_client_certificates(ssl.certificates, certs_dir)
    connection = Connection(
        host=_client_host(pg.host),
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
    notify(f"ready on {connection.host}:{connection.port} after {seconds:.1f}s")
    variables = render_env(connection, profile.env.preset, profile.env.vars)
    record = _replace(record, variables=variables)
    save_record(record)
    if profile.env_file is not None:
        signals.current().checkpoint()
        EnvFileGuard(state_dir).write(profile.env_file, variables)
        notify(f"wrote {profile.env_file}")
    return Environment.from_record(record)


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
        f"{LABEL_PREFIX}state-dir": str(env_state_dir(record.env_id)),
    }


def _client_host(bind_host: str) -> str:
    # A server bound to every interface is still reached most simply on loopback.
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_host, bind_host)


def _refuse_twin(profile: Profile, runtime: Runtime, notify: Notify) -> None:
    record = load_record(profile.env_id)
    running = [env for env in runtime.environments() if env.env_id == profile.env_id]
    if record is None and not running:
        return
    if record is not None and is_orphan(record):
        notify(f"removing an orphaned environment left by process {record.owner_pid}")
        _teardown(profile.env_id, runtime)
        return
    where = ""
    if record is not None and record.connection:
        where = f" on {record.connection['host']}:{record.connection['port']}"
    raise AlreadyRunningError(
        f"an environment for {profile.path or profile.name} is already up{where}",
        hint=f"use it, or remove it first with `envctl down {profile.path or profile.name}`",
    )


def is_orphan(record: EnvironmentRecord) -> bool:
    """A `run` environment whose envctl process is gone; `up` environments live until `down`."""
    return record.mode != "up" and not process_alive(record.owner_pid)


def find(profile: Profile) -> Environment | None:
    """The running environment of `profile`, if there is one."""
    record = load_record(profile.env_id)
    if record is None or not record.connection or not record.variables:
        return None
    return Environment.from_record(record)


def down(env_id: str, runtime: Runtime | None = None) -> list[str]:
    """Remove the environment `env_id` and restore its env file; return what was removed."""
    from provisioner.runtime.select import runtime_named

    if runtime is None:
        record = load_record(env_id)
        runtime = runtime_named(record.runtime if record else "docker")
    return _teardown(env_id, runtime)


def _teardown(env_id: str, runtime: Runtime) -> list[str]:
    record = load_record(env_id)
    removed = runtime.remove(env_id)
    restored = EnvFileGuard(env_state_dir(env_id)).restore()
    if restored is not None:
        removed.append(f"restored {restored}")
    certificates = _remove_certificates(record)
    if certificates is not None:
        removed.append(certificates)
    forget(env_id)
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
