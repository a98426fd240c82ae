"""Where a Docker server runs: on this machine's network when it runs nothing but its cluster
(no seed, no suite container joining; a fifth of a second less for the engine's start), with
its data in memory when nothing of it is kept (initdb 0.4 s instead of 1.0 s on a slow disk),
or when it comes from the cache for a suite that makes its databases from template1.

It must listen where the profile says and nowhere else, find its port in every tool run inside
it, and keep its log clean; a seeded start and a suite in a container keep Docker's network, and
a seeded, durable or kept cluster stays on disk.
"""

from __future__ import annotations

import contextlib
import grp
import pwd
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from provisioner.environments import find
from provisioner.profile import load_profile
from provisioner.runtime.docker import MEMORY_PGDATA
from provisioner.runtime.docker_cache import CACHED_PGDATA
from provisioner.runtime.engines import shares_network
from provisioner.runtime.labels import PORT_LABEL
from tests.conftest import envctl, remove_cache_entries, unavailable, write_profile
from tests.integration.second_engine import CannotStart, second_engine

PLAIN = "name: hostnet\npostgres:\n  version: '15'\n  database: app\nenv:\n  file: .env.test\n"


def _own(text: str) -> str:
    """`text` with a database of its own: a cache key no other test's entry has."""
    return text.replace("database: app", f"database: app_{uuid.uuid4().hex[:12]}")


def _server(docker: Any, profile: Path) -> tuple[Any, Any]:
    """The environment of `profile` that is up, and its server's container."""
    env = find(load_profile(profile))
    assert env is not None
    return env, docker.containers.get(f"envctl-{env.env_id}")


def _refused_beyond_loopback(port: int) -> None:
    """Nothing answers on `port` at this machine's other addresses (docker0's among them)."""
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    addresses = [line.split()[3].split("/")[0] for line in shown.splitlines()]
    assert addresses, shown
    for address in addresses:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, port), timeout=2).close()


def test_a_start_without_a_seed_shares_this_machine_network_on_loopback_only(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVCTL_CACHE")  # the default: the 2nd start keeps, the 3rd is a hit
    profile = write_profile(tmp_path, _own(PLAIN))
    said, modes = [], []
    for _ in range(3):
        up = envctl("up", str(profile))
        assert up.returncode == 0, up.stderr
        said.append(up.stderr)
        try:
            env, container = _server(docker, profile)
            modes.append(container.attrs["HostConfig"]["NetworkMode"])
            with psycopg.connect(env.url) as conn:
                listen = conn.execute("SHOW listen_addresses").fetchone()
                conn.execute("CREATE TABLE IF NOT EXISTS t AS SELECT 42 AS answer")
            if modes[-1] == "host":
                assert container.labels[PORT_LABEL] == str(env.port)
                assert listen == ("127.0.0.1",)
            else:
                bindings = container.attrs["NetworkSettings"]["Ports"]["5432/tcp"]
                assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
            _refused_beyond_loopback(env.port)
            # Tools run inside the container find the server at its port (PGPORT): pg_dump.
            dump = envctl("dump", str(profile), "-o", str(tmp_path / "app.dump"))
            assert dump.returncode == 0, dump.stderr
            assert (tmp_path / "app.dump").stat().st_size > 0
            log = container.logs().decode()
            # The helper's reload of the configuration after setting the password finds the
            # file agreeing with the command line (listen_addresses needs a restart).
            assert "received SIGHUP" in log
            assert "contains errors" not in log and "cannot be changed" not in log, log
        finally:
            assert envctl("down", str(profile)).returncode == 0
    assert "from the cache" in said[2] and "from the cache" not in said[0]
    # The start that keeps its cluster runs on Docker's network, as the image made it: the
    # entry starts anywhere, `docker run` by hand included (listening on 5432, everywhere).
    assert modes[0] == "host" and modes[1] != "host" and modes[2] == "host", modes
    (entry,) = [
        image
        for image in docker.images.list(filters={"label": "dev.envctl.cache"})
        if str(tmp_path) in image.labels.get("dev.envctl.cache-profile", "")
    ]
    assert not any(item.startswith("PGPORT=") for item in entry.attrs["Config"]["Env"])
    by_hand = docker.containers.run(
        entry.id,
        ["-D", CACHED_PGDATA],
        entrypoint="postgres",
        user="postgres",
        ports={"5432/tcp": ("127.0.0.1", None)},
        detach=True,
    )
    try:
        by_hand.reload()
        port = int(by_hand.attrs["NetworkSettings"]["Ports"]["5432/tcp"][0]["HostPort"])
        deadline = time.monotonic() + 30
        while True:  # it answers (asking for a password nobody knows): the server is up
            try:
                psycopg.connect(host="127.0.0.1", port=port, user="postgres", password="x")
            except psycopg.OperationalError as exc:
                if "password authentication failed" in str(exc):
                    break
                assert time.monotonic() < deadline, (exc, by_hand.logs().decode())
                time.sleep(0.1)
    finally:
        by_hand.remove(force=True, v=True)
    remove_cache_entries(docker, tmp_path)


def test_a_seeded_start_gets_a_network_of_its_own_and_its_cache_hit_shares(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_CACHE", "on")  # the first start keeps its entry
    seed = "  seed:\n    - sql: CREATE TABLE kept AS SELECT 7 AS n\n"
    profile = write_profile(tmp_path, _own(PLAIN.replace("env:", seed + "env:")))
    modes = []
    for _ in range(2):
        up = envctl("up", str(profile))
        assert up.returncode == 0, up.stderr
        try:
            env, container = _server(docker, profile)
            modes.append(container.attrs["HostConfig"]["NetworkMode"])
            if modes[-1] != "host":
                bindings = container.attrs["NetworkSettings"]["Ports"]["5432/tcp"]
                assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
            with psycopg.connect(env.url) as conn:
                assert conn.execute("SELECT n FROM kept").fetchone() == (7,)
        finally:
            assert envctl("down", str(profile)).returncode == 0
    remove_cache_entries(docker, tmp_path)
    # The seed's SQL ran on Docker's network; the hit runs none, on this machine's.
    assert modes[0] != "host" and modes[1] == "host", modes


def test_a_suite_in_a_container_keeps_the_network_it_joins(tmp_path: Path, docker: Any) -> None:
    text = PLAIN + "test:\n  container: {image: envctl-test/postgres:15}\n"
    profile = write_profile(tmp_path, text)
    up = envctl("up", str(profile))
    assert up.returncode == 0, up.stderr
    try:
        _, container = _server(docker, profile)
        assert container.attrs["HostConfig"]["NetworkMode"] != "host"
    finally:
        assert envctl("down", str(profile)).returncode == 0


def test_only_an_engine_serving_its_own_socket_on_this_network_shares_it(
    tmp_path: Path, docker: Any
) -> None:
    assert shares_network("unix:///var/run/docker.sock")
    assert not shares_network("tcp://127.0.0.1:2375")
    # A socket served by another program (Docker Desktop's proxy, a socket forwarder): its
    # engine may run anywhere, a virtual machine included.
    path = tmp_path / "proxy.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    try:
        assert not shares_network(f"unix://{path}")
    finally:
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        server.close()


def test_a_user_of_the_docker_group_shares_it_too(docker: Any) -> None:
    """Not root: the rootful engine's namespace cannot be read, its socket is seen here."""
    script = (
        "import os, socket, struct\n"
        "from provisioner.runtime.engines import shares_network\n"
        "s = socket.socket(socket.AF_UNIX); s.connect('/var/run/docker.sock')\n"
        "pid = struct.unpack('3i', s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]\n"
        "try:\n"
        "    os.readlink(f'/proc/{pid}/ns/net'); print('readable')\n"
        "except PermissionError:\n"
        "    print('denied')\n"
        "print(shares_network('unix:///var/run/docker.sock'))\n"
    )
    nobody = pwd.getpwnam("nobody")
    shown = subprocess.run(
        ["/usr/bin/python3", "-c", script],
        env={"PYTHONPATH": str(Path(__file__).parents[2]), "PATH": "/usr/bin:/bin"},
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[grp.getgrnam("docker").gr_gid],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.stdout.split() == ["denied", "True"], shown.stderr


def test_a_start_that_keeps_nothing_has_its_data_in_memory(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def data_folder(text: str, folder: str) -> tuple[str, bool]:
        (tmp_path / folder).mkdir()
        profile = write_profile(tmp_path / folder, _own(text))
        up = envctl("up", str(profile))
        assert up.returncode == 0, up.stderr
        try:
            env, container = _server(docker, profile)
            with psycopg.connect(env.url) as conn:
                row = conn.execute("SHOW data_directory").fetchone()
                assert row is not None
                conn.execute("CREATE TABLE t AS SELECT 1 AS n")  # it writes there
            return str(row[0]), MEMORY_PGDATA in (container.attrs["HostConfig"].get("Tmpfs") or {})
        finally:
            assert envctl("down", str(profile)).returncode == 0

    assert data_folder(PLAIN, "plain") == (MEMORY_PGDATA, True)  # ENVCTL_CACHE=off: kept nowhere
    durable = PLAIN.replace("env:", "  durable: true\nenv:")
    seeded = PLAIN.replace("env:", "  seed: [{sql: CREATE TABLE s AS SELECT 1 AS n}]\nenv:")
    for text, folder in ((durable, "durable"), (seeded, "seeded")):
        where, in_memory = data_folder(text, folder)
        assert not in_memory and where != MEMORY_PGDATA, folder
    monkeypatch.setenv("ENVCTL_CACHE", "on")  # kept: the cache's folder, which a commit keeps
    assert data_folder(PLAIN, "kept") == (CACHED_PGDATA, False)
    remove_cache_entries(docker, tmp_path)


TEMPLATED = PLAIN.replace(
    "env:",
    "  seed: [{sql: CREATE TABLE kept AS SELECT 7 AS n}]\n  template1: true\nenv:",
)


def _data_folder(url: str, container: Any) -> tuple[str, bool]:
    """Where the server's data folder is, and whether a tmpfs (memory) is mounted there."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    mounts = container.exec_run(["cat", "/proc/mounts"]).output.decode()
    return str(row[0]), f" {row[0]} tmpfs " in mounts


def _database_from_template1(url: str, name: str) -> Any:
    """What a runner like Medusa's does: CREATE DATABASE with no TEMPLATE, then look inside."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(make_conninfo(url, dbname=name)) as conn:
        return conn.execute("SELECT n FROM kept").fetchone()


def test_a_cache_hit_whose_suite_makes_databases_from_template1_has_its_data_in_memory(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner that makes a database per test file from template1 copies ~1,500 files each
    time for a migrated schema: a second in the image's layer on a slow disk, 40 ms in
    memory. A hit of a `template1: true` profile copies the entry's data folder into memory
    first; what the suite writes there is gone with the environment, the entry unchanged."""
    monkeypatch.setenv("ENVCTL_CACHE", "on")  # the first start keeps its entry
    profile = write_profile(tmp_path, _own(TEMPLATED))
    seen: list[tuple[str, bool]] = []
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(remove_cache_entries, docker, tmp_path)
        for run in range(3):
            _up_make_reset_down(profile, docker, run, seen)
    # The keeping start's cluster is committed from the image's layer; the hits run in memory.
    assert seen == [(CACHED_PGDATA, False), (MEMORY_PGDATA, True), (MEMORY_PGDATA, True)]


def _up_make_reset_down(profile: Path, docker: Any, run: int, seen: list[tuple[str, bool]]) -> None:
    """`up`; a database from template1, as the runner makes it; a write, `reset`; `down`."""
    up = envctl("up", str(profile))
    assert up.returncode == 0, up.stderr
    try:
        env, container = _server(docker, profile)
        seen.append(_data_folder(env.url, container))
        assert _database_from_template1(env.url, f"file_{run}") == (7,)
        with psycopg.connect(env.url) as conn:
            conn.execute("INSERT INTO kept VALUES (8)")
            conn.commit()
        assert envctl("reset", str(profile)).returncode == 0
        with psycopg.connect(env.url) as conn:
            assert conn.execute("SELECT array_agg(n) FROM kept").fetchone() == ([7],)
            names = conn.execute("SELECT array_agg(datname::text) FROM pg_database")
            found = names.fetchone()
        assert found is not None and f"file_{run - 1}" not in found[0]  # not in the entry
    finally:
        assert envctl("down", str(profile)).returncode == 0


_WHERE = """
import os, sys, psycopg
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    where = conn.execute("SHOW data_directory").fetchone()[0]
open(sys.argv[1], "a").write(where + "\\n")
"""

_PLUGIN_SESSION = """
import subprocess, sys
from pathlib import Path

def test_where(envctl_env{db}):
    subprocess.run([sys.executable, {script!r}, {out!r}], check=True)
"""


def test_a_hit_whose_suite_makes_databases_has_its_data_in_memory(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-worker databases (`run --workers`), resets between runs (`--repeat`) and per-test
    clones (the pytest plugin's envctl_db) copy the template as template1's copies do: a hit
    whose suite makes them runs in memory; one whose suite makes none, in the image's layer."""
    monkeypatch.setenv("ENVCTL_CACHE", "on")  # the first start keeps its entry
    profile = write_profile(
        tmp_path, _own(PLAIN.replace("env:", "  seed: [{sql: SELECT 1}]\nenv:"))
    )
    script, out = tmp_path / "where.py", tmp_path / "where.txt"
    script.write_text(_WHERE)
    suite = ["--", sys.executable, str(script), str(out)]
    try:
        for args in ([], [], ["--workers", "2"], ["--repeat", "2"]):
            done = envctl("run", *args, str(profile), *suite)
            assert done.returncode == 0, done.stderr
        for db in ("", ", envctl_db"):
            test = tmp_path / f"test_plugin{len(db)}.py"
            test.write_text(_PLUGIN_SESSION.format(db=db, script=str(script), out=str(out)))
            session = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--envctl-profile={profile}",
                    str(test),
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert session.returncode == 0, session.stdout + session.stderr
    finally:
        remove_cache_entries(docker, tmp_path)
    # keeping, a hit making none, --workers, --repeat (twice), the plugin without and with.
    memory, layer = MEMORY_PGDATA, CACHED_PGDATA
    assert out.read_text().split() == [layer, layer, memory, memory, memory, layer, memory]


def test_a_hit_too_large_for_memory_or_not_making_databases_stays_in_the_image_layer(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import provisioner
    from provisioner.runtime import docker as docker_runtime

    monkeypatch.setenv("ENVCTL_CACHE", "on")
    templated = write_profile(tmp_path, _own(TEMPLATED))
    (tmp_path / "plain").mkdir()
    plain = write_profile(tmp_path / "plain", _own(PLAIN))
    try:
        for profile in (templated, plain):
            with provisioner.environment(profile):
                pass  # keeps the entry
        with provisioner.environment(plain) as env:  # a hit whose suite makes no databases
            _, container = _server(docker, plain)
            assert _data_folder(env.url, container) == (CACHED_PGDATA, False)
        monkeypatch.setattr(docker_runtime, "MEMORY_COPY_MAX_KB", 1)
        with provisioner.environment(templated) as env:  # more than the limit: where it is
            _, container = _server(docker, templated)
            assert _data_folder(env.url, container) == (CACHED_PGDATA, False)
            assert _database_from_template1(env.url, "file_0") == (7,)
    finally:
        remove_cache_entries(docker, tmp_path)


def test_an_engine_that_refuses_this_machines_network_gives_the_server_its_own(
    tmp_path: Path, docker: Any, test_images: dict[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dockerd that remaps user namespaces refuses `--network host`: the start goes on, on
    Docker's own network, reached as usual."""
    with contextlib.ExitStack() as stack:
        try:
            engine = stack.enter_context(second_engine([test_images[15]], "--userns-remap=default"))
        except CannotStart as exc:
            unavailable(f"a second dockerd cannot start here: {exc}")
        assert shares_network(engine.socket)  # a dockerd on this network: it would share it
        monkeypatch.setenv("DOCKER_HOST", engine.socket)
        profile = write_profile(tmp_path, _own(PLAIN))
        up = envctl("-v", "up", str(profile))
        assert up.returncode == 0, up.stderr
        assert "refused this machine's network" in up.stderr
        try:
            env = find(load_profile(profile))
            assert env is not None
            with psycopg.connect(env.url) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            assert envctl("down", str(profile)).returncode == 0
