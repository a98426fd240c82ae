"""The native server process: launched detached on its port, watched until bound, stopped."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from provisioner import signals
from provisioner.errors import AlreadyRunningError, InfrastructureError, PortInUseError
from provisioner.ports import free_port, port_free
from provisioner.processes import process_alive
from provisioner.runtime import ServerSpec
from provisioner.runtime.binaries import Install
from provisioner.runtime.native.files import read_from, read_lines
from provisioner.runtime.native.layout import (
    Layout,
    ServerState,
    ensure_root,
    load_state,
    save_state,
)
from provisioner.runtime.native.user import ServerUser, as_server, child_environment, own
from provisioner.state import all_env_ids

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0  # fast shutdown, then SIGKILL

BIND_TIMEOUT = 30.0  # how long start() waits for the server to hold its port

PORT_ATTEMPTS = 5

# Servers this process started, by environment: their exit status is known only to us.
started_here: dict[str, subprocess.Popen[bytes]] = {}


def check_port_free(host: str, port: int) -> None:
    if port_free(host, port):
        return
    raise _port_in_use(host, port)


def _port_in_use(host: str, port: int) -> PortInUseError:
    holder = next(
        (
            env_id
            for env_id in all_env_ids()
            if (state := load_state(env_id)) is not None and state.port == port
        ),
        None,
    )
    who = f"envctl-{holder} (a native envctl server)" if holder else "another process"
    return PortInUseError(
        f"port {port} on {host} is already in use by {who}",
        hint="stop it, choose another postgres.port, or use `port: auto`",
    )


def launch(
    spec: ServerSpec,
    install: Install,
    layout: Layout,
    user: ServerUser | None,
    state: ServerState,
    meanwhile: Callable[[], object] | None = None,
) -> ServerState:
    """Start the server detached; with `port: auto`, try another port if one was taken.

    `meanwhile` runs once, while the first server process starts."""
    attempts = 1 if spec.port is not None else PORT_ATTEMPTS
    for _ in range(attempts):
        port = spec.port if spec.port is not None else free_port(spec.bind_host)
        offset = layout.log.stat().st_size if layout.log.exists() else 0
        process = _spawn(spec, install, layout, user, port)
        state = replace(state, port=port, pid=process.pid)
        save_state(state)
        if meanwhile is not None:
            meanwhile()
            meanwhile = None
        if _wait_until_bound(process, layout):
            return state
        # It exited: a port taken between our probe and its bind is worth another try;
        # any other failure is for readiness to report, with the log.
        taken = "Address already in use" in read_from(layout.log, offset)
        if not (taken or not port_free(spec.bind_host, port)):
            return state
        process.wait()
        started_here.pop(spec.env_id, None)
        if spec.port is not None:
            raise _port_in_use(spec.bind_host, port)
        log.info("port %d was taken before the server could bind it; trying another", port)
    raise InfrastructureError(
        f"no free port on {spec.bind_host} after {attempts} attempts",
        hint="set a fixed postgres.port",
    )


def _spawn(
    spec: ServerSpec, install: Install, layout: Layout, user: ServerUser | None, port: int
) -> subprocess.Popen[bytes]:
    layout.socket_dir.mkdir(mode=0o700, exist_ok=True)
    own(layout.socket_dir, user)
    settings = {"cluster_name": f"envctl-{spec.env_id}"[:63], **spec.settings}
    # Ours last: the socket folder and address are what exec() and the port check rely on.
    settings["listen_addresses"] = spec.bind_host
    settings["unix_socket_directories"] = str(layout.socket_dir)
    argv = [str(install.bin_dir / "postgres"), "-D", str(layout.data), "-p", str(port)]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    log_file = os.open(layout.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        own(layout.log, user)
        # Its own session: the terminal's Ctrl-C and envctl's exit do not reach it.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=layout.folder,
            env=child_environment(layout.folder, user),
            start_new_session=True,
            **as_server(user),
        )
    finally:
        os.close(log_file)
    started_here[spec.env_id] = process
    log.info("started postgres (pid %d) on port %d: %s", process.pid, port, layout.data)
    return process


def _wait_until_bound(process: subprocess.Popen[bytes], layout: Layout) -> bool:
    """True once the server holds its TCP port (or we stop watching); False if it exited."""
    deadline = time.monotonic() + BIND_TIMEOUT
    while time.monotonic() < deadline:
        signals.current().checkpoint()
        if process.poll() is not None:
            return False
        # postmaster.pid gains its 6th line (the first listen address) once the port is bound.
        lines = read_lines(layout.data / "postmaster.pid")
        if len(lines) >= 6 and lines[5].strip():
            return True
        time.sleep(0.01)
    return True


def stop(env_id: str, pid: int, data: Path) -> bool:
    """Fast shutdown (SIGINT), then SIGKILL to its process group; False if not our server."""
    child = started_here.get(env_id)
    ours = child is not None and child.pid == pid
    if ours:
        assert child is not None
        if child.poll() is not None:
            return False
    elif not is_server(pid, data):
        return False
    # A server frozen by an interrupted cache store (SIGSTOP) would not see the SIGINT.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGCONT)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    if not _wait_gone(pid, child if ours else None, STOP_TIMEOUT):
        log.warning("postgres (pid %d) ignored a fast shutdown; killing it", pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # its own session: the group is its backends
        _wait_gone(pid, child if ours else None, STOP_TIMEOUT)
    return True


def _wait_gone(pid: int, child: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None:
            if child.poll() is not None:
                return True
        elif not process_alive(pid):
            return True
        time.sleep(0.02)
    return False


def is_server(pid: int, data: Path) -> bool:
    """Whether `pid` is a live postmaster of the data folder `data` (not a reused pid)."""
    if not process_alive(pid):
        return False
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            argv = proc.read_bytes().split(b"\0")
        except OSError:
            return False
        return (
            bool(argv)
            and os.path.basename(argv[0]) in (b"postgres", b"postmaster")
            and os.fsencode(data) in argv
        )
    # No /proc (macOS): the lock file the postmaster keeps names its pid.
    return postmaster_pid(data) == pid


def postmaster_pid(data: Path) -> int | None:
    lines = read_lines(data / "postmaster.pid")
    try:
        return int(lines[0]) if lines else None
    except ValueError:
        return None


def claim_folder(layout: Layout, env_id: str, user: ServerUser | None) -> None:
    """Create the environment's folder; a leftover without a live server is replaced."""
    ensure_root(user)
    try:
        layout.folder.mkdir(mode=0o700)
    except FileExistsError:
        pid = postmaster_pid(layout.data)
        if pid is not None and is_server(pid, layout.data):
            raise AlreadyRunningError(
                f"a native server for environment '{env_id}' already runs "
                f"(pid {pid}, {layout.folder})",
                hint=f"remove it with `envctl down {env_id}`",
            ) from None
        log.info("removing the leftover folder %s", layout.folder)
        shutil.rmtree(layout.folder)
        layout.folder.mkdir(mode=0o700)
    os.chmod(layout.folder, 0o700)
    own(layout.folder, user)
