"""pytest fixtures over envctl's Python API: one environment per session, a database per test.

Configure with `--envctl-profile PATH` or the ini option `envctl_profile`; without either the
plugin adds its options and fixtures and does nothing else.

- `envctl_env` (session): the running environment, started on first use, or reused when one for
  the profile is already up (`envctl up` in another terminal). Its variables are set in
  `os.environ` for the session and put back afterwards.
- `envctl_db` (function): a fresh database copied from the seeded template, dropped afterwards.

With pytest-xdist every worker shares one environment. The first worker that needs it starts
it while holding a lock file in a folder derived from the profile path; the others wait for the
lock and reuse it. The xdist controller (or the only process, without xdist) owns it: it lives
as long as the controller and is torn down in `pytest_unconfigure` (or at exit), after every
worker has finished. Each run leaves a marker in the locked folder; a run that reused another's
environment only removes its own clones, and the run that started it hands it over to a run
still using it instead of tearing it down under its feet.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from provisioner.errors import EnvctlError

if TYPE_CHECKING:
    from provisioner.api import ClonedDatabase, RunningEnvironment
    from provisioner.state import EnvironmentRecord

PROFILE_OPTION = "envctl_profile"
WORKER_INPUT_RUN = "envctl_run"
WORKER_INPUT_OWNER = "envctl_owner_pid"
MAX_KEPT_NAME = 60  # a number may follow, within Postgres's 63
CLONE_PREFIX = "t"
KEPT_PREFIX = "failed"
KEEP_FAILED_OPTION = "envctl_keep_failed"
_RUN_KEY = pytest.StashKey["_Run"]()
_REPORTS_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


@dataclass
class _Run:
    """This process's part in one test run against one profile."""

    profile_path: Path
    run_id: str  # the same in the controller and all its workers
    owner_pid: int  # the controller: the process the environment lives as long as
    worker: str  # "gw0", ... or "main"
    clones: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    previous_sigterm: Any = None

    @property
    def is_controller(self) -> bool:
        return self.owner_pid == os.getpid()

    @property
    def clone_prefix(self) -> str:
        return f"{CLONE_PREFIX}_{self.run_id}_"

    @property
    def kept_prefix(self) -> str:
        return f"{KEPT_PREFIX}_{self.run_id}_"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envctl", "disposable Postgres from an envctl profile")
    group.addoption(
        "--envctl-profile",
        dest=PROFILE_OPTION,
        metavar="PATH",
        default=None,
        help="the envctl profile the envctl_env and envctl_db fixtures use",
    )
    group.addoption(
        "--envctl-keep-failed",
        dest=KEEP_FAILED_OPTION,
        action="store_true",
        default=False,
        help="keep a failed test's envctl_db database (and the environment) to look at",
    )
    parser.addini(
        PROFILE_OPTION, "the envctl profile (relative to the ini file) for envctl_env/envctl_db"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item: envctl_db keeps a failed test's database."""
    report = yield
    item.stash.setdefault(_REPORTS_KEY, {})[report.when] = report
    return report


def pytest_configure(config: pytest.Config) -> None:
    path = _profile_path(config)
    if path is None:
        return
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and WORKER_INPUT_RUN in workerinput:
        run = _Run(
            profile_path=path,
            run_id=workerinput[WORKER_INPUT_RUN],
            owner_pid=workerinput[WORKER_INPUT_OWNER],
            worker=str(workerinput.get("workerid", "gw")),
        )
    else:
        run = _Run(
            profile_path=path, run_id=uuid.uuid4().hex[:8], owner_pid=os.getpid(), worker="main"
        )
        atexit.register(_release, run)
    run.previous_sigterm = _sigterm_interrupts()
    config.stash[_RUN_KEY] = run


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: tell each worker which run it belongs to and who owns the environment."""
    run = node.config.stash.get(_RUN_KEY, None)
    if run is not None:
        node.workerinput[WORKER_INPUT_RUN] = run.run_id
        node.workerinput[WORKER_INPUT_OWNER] = run.owner_pid


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN_KEY, None)
    if run is None:
        return
    if run.previous_sigterm is not None:
        signal.signal(signal.SIGTERM, run.previous_sigterm)
    if run.is_controller:
        _release(run)
        atexit.unregister(_release)


@pytest.fixture(scope="session")
def envctl_env(request: pytest.FixtureRequest) -> Iterator[RunningEnvironment]:
    """The running environment of the configured profile, shared by the whole session."""
    run = _run_of(request.config)
    # A session whose tests take envctl_db makes a database per test from the template.
    clones = any("envctl_db" in getattr(item, "fixturenames", ()) for item in request.session.items)
    with _reported():
        env = _acquire(run, makes_databases=clones)
    saved = {name: os.environ.get(name) for name in env.env}
    os.environ.update(env.env)
    try:
        yield env
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if run.is_controller:
            with _reported():
                _release(run)


@pytest.fixture
def envctl_db(
    request: pytest.FixtureRequest, envctl_env: RunningEnvironment
) -> Iterator[ClonedDatabase]:
    """A fresh database copied from the seeded template (`.name`, `.url`, `.env`)."""
    run = _run_of(request.config)
    # The pid too: a worker that replaces a crashed one gets its id, and its clones may remain.
    name = f"{run.clone_prefix}{run.worker}_{os.getpid()}_{next(run.clones)}"
    with _reported():
        database = envctl_env.clone_database(name)
    try:
        yield database
    finally:
        reports = request.node.stash.get(_REPORTS_KEY, {})
        failed = any(report.failed for report in reports.values())
        with _reported():
            if failed and request.config.getoption(KEEP_FAILED_OPTION):
                _keep(envctl_env, name, f"{run.kept_prefix}{request.node.name}")
            else:
                envctl_env.drop(name)


def _keep(env: RunningEnvironment, name: str, wanted: str) -> None:
    """Rename a failed test's clone to a name that says so; the run leaves it in place."""
    import re

    from psycopg import sql

    from provisioner.postgres.databases import admin_connection

    kept = re.sub(r"[^a-z0-9_]+", "_", wanted.lower())[:MAX_KEPT_NAME].rstrip("_")
    with admin_connection(env.connection) as conn:
        # A name taken by an earlier test of the same name gets a number.
        taken = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        final = next(
            candidate
            for candidate in itertools.chain([kept], (f"{kept}_{n}" for n in itertools.count(2)))
            if candidate not in taken
        )
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(name), sql.Identifier(final)
            )
        )


def _kept_databases(env_id: str, prefix: str) -> list[str]:
    """The failed tests' databases this run kept, as their URLs (password masked)."""
    from provisioner.connection import hide_secrets, password_forms
    from provisioner.environments import Environment
    from provisioner.postgres.databases import list_clones
    from provisioner.state import load_record

    record = load_record(env_id)
    if record is None or not record.connection:
        return []
    connection = Environment.from_record(record).connection
    import psycopg

    try:
        names = [name for name, _ in list_clones(connection) if name.startswith(prefix)]
    except psycopg.Error:  # the server is gone: nothing was kept
        return []
    forms = password_forms(connection.password)
    return [hide_secrets(connection.with_database(name).url, forms) for name in names]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash.get(_RUN_KEY, None)
    if run is None or not run.is_controller or not config.getoption(KEEP_FAILED_OPTION):
        return
    from provisioner.profile import load_profile

    with contextlib.suppress(EnvctlError):
        env_id = load_profile(run.profile_path).env_id
        kept = _kept_databases(env_id, run.kept_prefix)
        if not kept:
            return
        terminalreporter.section("envctl kept the databases of failed tests")
        for url in kept:
            terminalreporter.write_line(url)
        terminalreporter.write_line(
            f"the environment stays up: `envctl env {run.profile_path} --show-password` gives "
            f"the password, `envctl down {run.profile_path}` removes it all"
        )


def _profile_path(config: pytest.Config) -> Path | None:
    option = config.getoption(PROFILE_OPTION, default=None)
    if option:
        return (config.invocation_params.dir / str(option)).resolve()
    ini = config.getini(PROFILE_OPTION)
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return (base / str(ini)).resolve()
    return None


def _run_of(config: pytest.Config) -> _Run:
    run = config.stash.get(_RUN_KEY, None)
    if run is None:
        pytest.fail(
            "envctl: no profile configured: pass --envctl-profile PATH "
            "or set envctl_profile in the pytest ini file",
            pytrace=False,
        )
    return run


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    # envctl's errors name the file, key and fix already: one line, not a traceback.
    try:
        yield
    except EnvctlError as exc:
        pytest.fail(f"envctl: {exc}", pytrace=False)


def _acquire(run: _Run, *, makes_databases: bool = False) -> RunningEnvironment:
    """The environment of `run`'s profile: the one that is up, or one this run starts."""
    from provisioner.api import RunningEnvironment
    from provisioner.environments import find, up
    from provisioner.profile import load_profile
    from provisioner.state import load_record

    profile = load_profile(run.profile_path)
    folder = _run_folder(run.profile_path)
    with _locked(folder):
        marker = folder / f"run-{run.run_id}.json"
        found = find(profile)
        record = load_record(profile.env_id)
        if found is not None and record is not None and not _orphaned(record):
            if not marker.exists():
                _write_marker(marker, profile.env_id, run.owner_pid, started=False)
            return RunningEnvironment(profile, found)
        # Recorded before starting, so that the controller removes whatever a worker killed
        # half way through leaves behind.
        _write_marker(marker, profile.env_id, run.owner_pid, started=True)
        try:
            started = up(profile, mode="run", makes_databases=makes_databases)
        except BaseException:
            marker.unlink(missing_ok=True)
            raise
        _set_owner(profile.env_id, run.owner_pid)
        return RunningEnvironment(profile, started)


def _release(run: _Run) -> None:
    """Controller: end this run's use of the environment; tear it down if nobody else uses it."""
    folder = _run_folder(run.profile_path, create=False)
    marker = folder / f"run-{run.run_id}.json"
    if not marker.exists():
        return
    from provisioner.environments import down

    with _locked(folder):
        mine = _read_marker(marker)
        marker.unlink(missing_ok=True)
        if mine is None:
            return
        env_id = mine["env_id"]
        if not mine["started"]:
            _drop_clones(env_id, run.clone_prefix)
            return
        heir = _heir(folder, env_id)
        if heir is None:
            if _kept_databases(env_id, run.kept_prefix):  # --envctl-keep-failed kept some
                _drop_clones(env_id, run.clone_prefix)
            else:
                down(env_id)
            return
        # Another run still uses it: that run's controller now owns it and removes it later.
        _drop_clones(env_id, run.clone_prefix)
        path, owner_pid = heir
        _write_marker(path, env_id, owner_pid, started=True)
        _set_owner(env_id, owner_pid)


def _heir(folder: Path, env_id: str) -> tuple[Path, int] | None:
    """Another run still using the environment: its marker and its controller's pid."""
    from provisioner.processes import process_alive

    for other in sorted(folder.glob("run-*.json")):
        info = _read_marker(other)
        if info is None or info.get("env_id") != env_id:
            continue
        owner_pid = int(info.get("owner_pid", 0))
        if process_alive(owner_pid):
            return other, owner_pid
        other.unlink(missing_ok=True)  # a run whose controller is gone
    return None


def _drop_clones(env_id: str, prefix: str) -> None:
    """Drop the databases this run cloned (left by interrupted tests) in a reused environment."""
    import psycopg

    from provisioner.environments import Environment
    from provisioner.postgres.databases import drop_database
    from provisioner.state import load_record

    record = load_record(env_id)
    if record is None or not record.connection:
        return
    connection = Environment.from_record(record).connection
    try:
        with psycopg.connect(
            **connection.with_database("postgres").psycopg_kwargs(), autocommit=True
        ) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE left(datname, %s) = %s",
                [len(prefix), prefix],
            ).fetchall()
        for (name,) in rows:
            drop_database(connection, name)
    except psycopg.Error:
        pass  # the server is gone: so are the clones


def _orphaned(record: EnvironmentRecord) -> bool:
    from provisioner.environments import is_orphan

    return is_orphan(record)


def _set_owner(env_id: str, pid: int) -> None:
    """Make `pid` the environment's owner: orphan detection follows that process from now on."""
    from provisioner.processes import start_time
    from provisioner.state import load_record, save_record

    record = load_record(env_id)
    if record is not None and record.owner_pid != pid:
        save_record(dataclasses.replace(record, owner_pid=pid, owner_start=start_time(pid)))


def _write_marker(path: Path, env_id: str, owner_pid: int, *, started: bool) -> None:
    from provisioner.envfile import write_atomic

    data = {"env_id": env_id, "owner_pid": owner_pid, "started": started}
    write_atomic(path, json.dumps(data).encode())


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_folder(profile_path: Path, *, create: bool = True) -> Path:
    """The folder that serializes every run against one profile (envctl's state folder)."""
    from provisioner.state import state_root

    digest = hashlib.sha256(str(profile_path).encode()).hexdigest()[:16]
    folder = state_root() / "pytest" / digest
    if create:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock file; released by the kernel if this process dies."""
    import fcntl  # POSIX: imported here, so that the plugin loads (inert) on every OS

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / "lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _sigterm_interrupts() -> Any:
    """Make SIGTERM stop the run like Ctrl-C, so that teardown runs; return the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return None  # somebody else handles it

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    return previous
