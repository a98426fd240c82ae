"""The native runtime: Postgres from local or pip-installed binaries, one private folder each.

Each environment gets `<tmp>/envctl-native-<uid>/<env_id>/` (0700) holding its data folder,
config files, socket folder, inbox and server log (`layout`). The server runs detached, in its
own session, so that it outlives `envctl up` (`server`); what later commands need to find it
again (folder, pid, port, install) is kept in `native.json` in envctl's state folder for the
environment. A cluster is made by initdb (`cluster`), or comes from the cache (`entries`): a
spare copy of the entry renamed into place (`spare`), else a copy.

Postgres refuses to run as root, so when envctl is root every server process and client tool
runs as the unprivileged system user `envctl-postgres` (`user`), which owns the private folder.
That is why the folder is under the temporary folder and not in the state folder (often under
/root).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from provisioner.connection import Connection
from provisioner.errors import InfrastructureError, UsageError
from provisioner.processes import run
from provisioner.runtime import (
    ExecResult,
    FoundEnvironment,
    ServerSpec,
    StartedServer,
)
from provisioner.runtime.binaries import find_install
from provisioner.runtime.engines import Placement
from provisioner.runtime.labels import environment_labels
from provisioner.runtime.native import entries, spare
from provisioner.runtime.native.cluster import (
    adopt_password,
    check_ssl,
    exit_status,
    initdb,
    write_files,
)
from provisioner.runtime.native.files import copy_tree, remove_folder, tail, tree
from provisioner.runtime.native.layout import (
    STATE_FILE,
    Layout,
    ServerState,
    check_reachable,
    check_socket_path,
    is_private,
    load_state,
    private_folder,
    running_state,
    save_state,
)
from provisioner.runtime.native.server import (
    check_port_free,
    claim_folder,
    is_server,
    launch,
    postmaster_pid,
    started_here,
    stop,
)
from provisioner.runtime.native.user import as_server, child_environment, own, server_user
from provisioner.state import all_env_ids, env_state_file, load_record


class NativeRuntime:
    """Runs each environment's server from PostgreSQL binaries installed on this machine."""

    name = "native"
    cache = entries.NativeCache()

    def config_dir(self, env_id: str) -> str:
        return str(Layout(private_folder(env_id)).config)

    def placement(self, bind_host: str) -> Placement:
        """On this machine: the profile's address, reached on loopback when it is a wildcard."""
        return Placement(bind_host, {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_host, bind_host))

    def server_names(self, env_id: str) -> tuple[str, ...]:
        return ()

    def describe(self, image: str) -> str:
        return "native binaries"

    def start(
        self, spec: ServerSpec, meanwhile: Callable[[], object] | None = None
    ) -> StartedServer:
        install = find_install(spec.major, spec.bin_dir)
        check_ssl(spec, install)
        if spec.port is not None:
            check_port_free(spec.bind_host, spec.port)
        user = server_user()
        if user is not None:
            check_reachable(user, install)
        layout = Layout(private_folder(spec.env_id))
        check_socket_path(layout)
        claim_folder(layout, spec.env_id, user)
        state = ServerState(
            env_id=spec.env_id,
            folder=str(layout.folder),
            bin_dir=str(install.bin_dir),
            version=install.version,
            source=install.source,
            bind_host=spec.bind_host,
            superuser=spec.user,
        )
        try:
            save_state(state)
            write_files(layout.config, spec.files, user)
            from_spare = False
            if spec.from_cache:
                # A spare copy is renamed into place; without one, the entry is copied.
                from_spare = spare.take(Path(spec.from_cache), layout.data)
                if not from_spare:
                    copy_tree(Path(spec.from_cache) / "data", layout.data)
            else:
                initdb(spec, install, layout, user)
            state = launch(spec, install, layout, user, state, meanwhile)
            if spec.from_cache:
                assert state.port is not None
                adopt_password(spec, layout, state.port)
        except BaseException:
            # Whatever stopped us (an error, a signal), nothing of this environment stays.
            self.remove(spec.env_id)
            raise
        assert state.port is not None and state.pid is not None
        return StartedServer(
            port=state.port,
            details={
                "native_folder": str(layout.folder),
                "data_dir": str(layout.data),
                "server_pid": state.pid,
                "bin_dir": str(install.bin_dir),
                "postgres_version": install.version,
                "install": install.source,
                **({"from_spare": True} if from_spare else {}),
            },
        )

    def failure(self, env_id: str) -> str | None:
        state = load_state(env_id)
        if state is None or state.pid is None:
            return "no native server was started for this environment"
        child = started_here.get(env_id)
        if child is not None and child.pid == state.pid:
            code = child.poll()
            return None if code is None else f"the server exited with {exit_status(code)}"
        if is_server(state.pid, state.layout.data):
            return None
        return f"the server (pid {state.pid}) is no longer running"

    def log_tail(self, env_id: str, lines: int = 40) -> str:
        state = load_state(env_id)
        layout = state.layout if state else Layout(private_folder(env_id))
        return tail(layout.log, lines)

    def remove(self, env_id: str) -> list[str]:
        removed: list[str] = []
        state = load_state(env_id)
        layout = state.layout if state else Layout(private_folder(env_id))
        pids = {pid for pid in (state.pid if state else None, postmaster_pid(layout.data)) if pid}
        child = started_here.get(env_id)
        if child is not None:
            pids.add(child.pid)
        for pid in sorted(pids):
            if stop(env_id, pid, layout.data):
                removed.append(f"server pid {pid}")
        started_here.pop(env_id, None)
        if layout.folder.exists() and is_private(layout.folder):
            failures = remove_folder(layout.folder)
            if failures:
                # The record stays (the caller keeps it on an error): `gc` tries again later.
                raise InfrastructureError(
                    f"could not remove {layout.folder}: {len(failures)} entr"
                    f"{'y is' if len(failures) == 1 else 'ies are'} left, first {failures[0]}",
                    hint="remove what is left by hand (is something mounted or immutable "
                    "there?), then run `envctl gc`",
                )
            removed.append(f"folder {layout.folder}")
        env_state_file(env_id, STATE_FILE).unlink(missing_ok=True)
        return removed

    def environments(self) -> list[FoundEnvironment]:
        found: list[FoundEnvironment] = []
        for env_id in all_env_ids():
            record = load_record(env_id)
            if record is None or record.runtime != self.name:
                continue
            state = load_state(env_id)
            if state is None or state.pid is None:
                status = "starting"
            else:
                status = "running" if self.failure(env_id) is None else "exited"
            labels = environment_labels(record)
            resources: tuple[str, ...] = ()
            if state is not None:
                resources = (f"folder {state.folder}",)
                if state.pid is not None:
                    resources = (f"server pid {state.pid}", *resources)
            found.append(FoundEnvironment(env_id, labels, status, resources))
        return found

    def exec(
        self, env_id: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ExecResult:
        state = running_state(env_id)
        program = Path(argv[0]) if os.sep in argv[0] else Path(state.bin_dir) / argv[0]
        if not os.access(program, os.X_OK):
            raise InfrastructureError(
                f"{argv[0]} is not a program of PostgreSQL {state.version} in {state.bin_dir}"
            )
        layout = state.layout
        variables = {
            **child_environment(layout.folder, server_user()),
            "PGHOST": str(layout.socket_dir),
            "PGPORT": str(state.port),
            # The OS user has no role of its own; the profile's user is the superuser, as
            # `postgres` is in the Docker image.
            "PGUSER": state.superuser,
            **(env or {}),
        }
        result = run(
            [str(program), *argv[1:]],
            merge_stderr=True,
            cwd=layout.folder,
            env=variables,
            **as_server(server_user()),
        )
        return ExecResult(result.returncode, result.stdout)

    def copy_in(self, env_id: str, source: Path) -> str:
        layout = running_state(env_id).layout
        user = server_user()
        layout.inbox.mkdir(mode=0o700, exist_ok=True)
        own(layout.inbox, user)
        folder = Path(tempfile.mkdtemp(dir=layout.inbox))
        target = folder / source.name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        # The server's user reads seeds and writes dumps here, whoever owned the originals.
        for path in (folder, *tree(target)):
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) | (0o700 if path.is_dir() else 0o600))
            own(path, user)
        return str(target)

    def copy_out(self, env_id: str, path: str, destination: Path) -> None:
        layout = running_state(env_id).layout
        source = Path(path).resolve()
        # Files in the folder belong to the server's user: follow no link out of it.
        if not source.is_relative_to(layout.folder.resolve()):
            raise InfrastructureError(f"{path} is not inside environment {env_id}'s folder")
        if not source.is_file():
            raise InfrastructureError(f"{path} in environment {env_id} is not a file")
        shutil.copyfile(source, destination)

    def run_suite_container(
        self,
        env_id: str,
        *,
        image: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        mounts: Mapping[Path, str],
        workdir: str,
        timeout: float | None,
        user: str | None = None,
    ) -> int:
        """No containers here: the server runs from binaries on this machine."""
        raise UsageError(
            "test.container needs the docker runtime, but this environment runs on native binaries",
            hint="remove test.container, or use --runtime docker",
        )

    def in_network(self, connection: Connection) -> Connection:
        return connection  # no network of its own: clients on this machine reach it as it is
