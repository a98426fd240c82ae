"""Finding the engine where users' tools put it: files laid out as Docker, colima, rootless
Docker and Podman lay them out, pointing at this machine's real engine, which must answer."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.errors import DockerUnavailableError
from provisioner.runtime.engines import choose, docker_engine, survey
from provisioner.runtime.engines import docker_client as connect_client
from tests.conftest import envctl

REAL_SOCKET = "/var/run/docker.sock"
ENGINE_VARIABLES = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake HOME with nothing of Docker's in it, and no engine variable set."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run-user"))
    for name in ENGINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return folder


def write_context(config: Path, name: str, host: str | None, current: bool = True) -> Path:
    """A context as `docker context create NAME --docker host=HOST` writes it."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    endpoints = {"docker": {"Host": host, "SkipTLSVerify": False}} if host else {}
    (meta / "meta.json").write_text(
        json.dumps({"Name": name, "Metadata": {"Description": ""}, "Endpoints": endpoints})
    )
    if current:
        (config / "config.json").write_text(json.dumps({"auths": {}, "currentContext": name}))
    return meta


def test_the_current_context_names_the_engine_and_it_answers(
    home: Path, docker_client: Any
) -> None:
    write_context(home / ".docker", "colima", f"unix://{REAL_SOCKET}")
    chosen = choose(timeout=3)
    assert chosen.answered
    assert chosen.candidate.source == f"context colima ({home}/.docker/config.json currentContext)"
    assert chosen.candidate.address == f"unix://{REAL_SOCKET}"
    assert docker_engine().address == f"unix://{REAL_SOCKET}"
    assert connect_client().ping()


def test_docker_context_wins_over_current_context_and_docker_config_is_honoured(
    home: Path, tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "elsewhere"
    write_context(config, "broken", "unix:///nonexistent/docker.sock")
    write_context(config, "desktop-linux", f"unix://{REAL_SOCKET}", current=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.setenv("DOCKER_CONTEXT", "desktop-linux")
    chosen = choose(timeout=3)
    assert chosen.candidate.source == "context desktop-linux (DOCKER_CONTEXT)"
    assert chosen.answered


def test_a_context_without_its_endpoint_is_a_clear_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONTEXT", "gone")
    with pytest.raises(DockerUnavailableError) as raised:
        docker_engine(timeout=1)
    digest = hashlib.sha256(b"gone").hexdigest()
    assert raised.value.message == (
        "Docker context 'gone' (DOCKER_CONTEXT) has no docker endpoint in "
        f"{home}/.docker/contexts/meta/{digest}/meta.json"
    )
    assert "docker context use default" in (raised.value.hint or "")


def test_a_context_whose_socket_is_missing_is_not_passed_over(home: Path) -> None:
    """The user chose the context: a silent fallback would use another engine."""
    write_context(home / ".docker", "orbstack", f"unix://{home}/.orbstack/run/docker.sock")
    with pytest.raises(DockerUnavailableError, match="no socket there"):
        docker_engine(timeout=1)


def test_the_default_context_means_the_well_known_sockets(home: Path, docker_client: Any) -> None:
    (home / ".docker").mkdir()
    (home / ".docker" / "config.json").write_text('{"currentContext": "default"}')
    assert choose(timeout=3).candidate.source == "the default socket"


def test_colimas_symlinked_socket_is_found_before_the_default_one(
    home: Path, docker_client: Any
) -> None:
    colima = home / ".colima" / "default"
    colima.mkdir(parents=True)
    (colima / "docker.sock").symlink_to(REAL_SOCKET)
    found = survey(timeout=3, every=True)
    assert found.chosen is not None and found.chosen.candidate.source == "colima"
    assert found.reason == "the first in envctl's order that answers"
    default = [p for p in found.probes if p.candidate.source == "the default socket"]
    assert default[0].answered  # also there, and asked (`every`), but later in the order
    client = docker_client_of(found.chosen.candidate)
    assert client.ping()


def docker_client_of(candidate: Any) -> Any:
    from provisioner.runtime.engines import sdk_client

    return sdk_client(candidate)


def test_rootless_dockers_socket_comes_first(
    home: Path, tmp_path: Path, docker_client: Any
) -> None:
    run_user = tmp_path / "run-user"
    run_user.mkdir()
    (run_user / "docker.sock").symlink_to(REAL_SOCKET)
    (home / ".colima").mkdir()
    (home / ".colima" / "docker.sock").symlink_to(REAL_SOCKET)
    assert choose(timeout=3).candidate.source == "rootless Docker"


def test_podmans_rootless_socket_is_found(home: Path, tmp_path: Path, docker_client: Any) -> None:
    podman = tmp_path / "run-user" / "podman"
    podman.mkdir(parents=True)
    (podman / "podman.sock").symlink_to(REAL_SOCKET)
    assert choose(timeout=3).candidate.source == "Podman (rootless)"


def test_a_refusing_socket_is_named_and_the_next_one_answers(
    home: Path, docker_client: Any
) -> None:
    desktop = home / ".docker" / "run"
    desktop.mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(desktop / "docker.sock"))  # bound, never listening: Docker Desktop quit
    try:
        found = survey(timeout=3)
    finally:
        dead.close()
    assert found.chosen is not None and found.chosen.candidate.source == "the default socket"
    assert f"unix://{desktop}/docker.sock: refused" in found.reason


def test_envctl_runtimes_shows_what_was_found_what_answered_and_why(
    home: Path, docker_client: Any
) -> None:
    write_context(home / ".docker", "rancher", f"unix://{REAL_SOCKET}")
    result = envctl("runtimes", "--json", env={**os.environ})
    assert result.returncode == 0, result.stderr
    engines = json.loads(result.stdout)["docker"]["engines"]
    assert engines[0]["source"].startswith("context rancher")
    assert engines[0]["answered"] and engines[0]["chosen"]
    assert (
        engines[0]["why"] == f"context rancher ({home}/.docker/config.json currentContext) names it"
    )
    text = envctl("runtimes", env={**os.environ}).stdout
    assert f"docker engine: unix://{REAL_SOCKET} [context rancher" in text


class _OldEngine(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (
            b"OK"
            if self.path.endswith("/_ping")
            else json.dumps({"Version": "1.12.6", "ApiVersion": "1.24"}).encode()
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> Any:
        request, _ = super().get_request()
        return request, ("local", 0)


@pytest.fixture
def old_engine(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "old.sock"
    server = _UnixHTTPServer(str(path), _OldEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def test_an_engine_too_old_is_named_with_its_api_version(
    home: Path, old_engine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{old_engine}")
    with pytest.raises(DockerUnavailableError) as raised:
        docker_engine(timeout=2)
    assert raised.value.message == (
        f"no Docker engine answers at unix://{old_engine} (DOCKER_HOST: engine 1.12.6 speaks "
        "Engine API 1.24, older than the 1.25 envctl needs)"
    )
    assert "upgrade the engine" in (raised.value.hint or "")


def test_a_socket_this_user_may_not_open_names_its_group() -> None:
    """As an unprivileged user (root opens every socket), like a user not in group docker."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to become another user")
    folder = Path(tempfile.mkdtemp(prefix="envctl-perm-"))
    try:
        folder.chmod(0o755)
        path = folder / "docker.sock"
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.listen()
        os.chown(path, 0, 1)  # group daemon (gid 1 on Debian), as dockerd sets group docker
        path.chmod(0o660)
        code = (
            "from provisioner.runtime.engines import docker_engine\n"
            "from provisioner.errors import DockerUnavailableError\n"
            "try:\n    docker_engine(timeout=1)\n"
            "except DockerUnavailableError as exc:\n    print(exc.message); print(exc.hint)\n"
        )
        result = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                code,
            ],
            env={**os.environ, "DOCKER_HOST": f"unix://{path}", "HOME": str(folder)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        listener.close()
    finally:
        shutil.rmtree(folder)
    import grp

    group = grp.getgrgid(1).gr_name
    message, hint = result.stdout.splitlines()[:2]
    assert message == (
        f"no Docker engine answers at unix://{path} (DOCKER_HOST: permission denied: this user "
        "may not open the socket)"
    ), result.stderr
    assert hint == (
        f"`sudo usermod -aG {group} $USER`, then log in again (the socket belongs to {group})"
    )


def test_doctor_says_which_engine_answers_why_and_what_else_was_found(
    home: Path, tmp_path: Path, docker_client: Any
) -> None:
    (tmp_path / ".env.test").write_text("DATABASE_URL=postgresql://u:p@127.0.0.1:1/db\n")
    desktop = home / ".docker" / "run"
    desktop.mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(desktop / "docker.sock"))
    try:
        result = envctl(
            "doctor", "--json", "--env-file", str(tmp_path / ".env.test"), env={**os.environ}
        )
    finally:
        dead.close()
    checks = {check["name"]: check for check in json.loads(result.stdout)}
    detail = checks["docker"]["evidence"]
    assert detail.startswith(
        f"the Docker engine answers at unix://{REAL_SOCKET} (the default socket; Docker Engine"
    ), detail
    assert "chosen because the first in envctl's order that answers" in detail
    assert f"also found: unix://{desktop}/docker.sock (Docker Desktop): refused" in detail
