"""An engine at ssh://, for real: a private sshd on 127.0.0.3 in front of this machine's own
dockerd, reached as a user reaches a build box: `DOCKER_HOST=ssh://build-box`, where build-box
is a host alias of their ~/.ssh/config (HostName, Port, User, IdentityFile) with its host key in
~/.ssh/known_hosts. The docker SDK reaches it through paramiko (envctl's `ssh` extra).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import envctl, leftovers, unavailable, write_profile

ADDRESS = "127.0.0.3"  # loopback: the environment's port binds here, reached by nobody else
ALIAS = "build-box"
MAJOR = 17


@dataclass(frozen=True)
class SshEngine:
    home: Path  # a HOME whose ~/.ssh knows build-box
    port: int

    def env(self, docker_host: str = f"ssh://{ALIAS}") -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),
            "DOCKER_HOST": docker_host,
            "ENVCTL_RUNTIME": "docker",
        }


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((ADDRESS, 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def ssh_engine(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[SshEngine]:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd) or shutil.which("ssh-keygen") is None:
        unavailable("sshd is not installed (Debian: openssh-server)")
    if os.geteuid() != 0:
        unavailable("a private sshd that logs in as root needs root")
    server_dir = tmp_path_factory.mktemp("sshd")
    home = tmp_path_factory.mktemp("home")
    dot_ssh = home / ".ssh"
    dot_ssh.mkdir(mode=0o700)
    host_key = _keygen(server_dir / "host_key")
    (server_dir / "authorized_keys").write_text(_keygen(dot_ssh / "id_ed25519") + "\n")
    port = _free_port()
    (server_dir / "sshd_config").write_text(
        f"ListenAddress {ADDRESS}:{port}\nHostKey {server_dir / 'host_key'}\n"
        f"AuthorizedKeysFile {server_dir / 'authorized_keys'}\n"
        f"PidFile {server_dir / 'sshd.pid'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
    )
    (dot_ssh / "known_hosts").write_text(f"[{ADDRESS}]:{port} {host_key}\n")
    (dot_ssh / "config").write_text(
        f"Host {ALIAS}\n  HostName {ADDRESS}\n  Port {port}\n  User root\n"
        f"  IdentityFile {dot_ssh / 'id_ed25519'}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder (Debian)
    log = server_dir / "sshd.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(server_dir / "sshd_config")], stderr=output
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection((ADDRESS, port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    unavailable(f"sshd did not start: {log.read_text()[-500:]}")
                time.sleep(0.05)
        yield SshEngine(home, port)
    finally:
        server.terminate()
        server.wait(10)


def _variables(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs if not key.startswith("#")}


def test_an_environment_on_an_ssh_engine_is_reached_at_its_hostname_from_the_env_file(
    tmp_path: Path, ssh_engine: SshEngine, docker_client: Any, private_state: Path
) -> None:
    import psycopg

    (tmp_path / "seed.sql").write_text(
        "CREATE TABLE pets (name text); INSERT INTO pets VALUES ('rex');\n"
    )
    profile = write_profile(
        tmp_path,
        f"name: over-ssh\npostgres:\n  version: '{MAJOR}'\n  ssl: verify-full\n"
        "  seed: [seed.sql]\nenv:\n  file: .env.test\n",
    )
    env = {**ssh_engine.env(), "ENVCTL_CACHE": "off"}
    runtimes = envctl("runtimes", env=env)
    assert runtimes.returncode == 0, runtimes.stderr
    assert f"ssh://{ALIAS} [DOCKER_HOST] answers: Docker Engine" in runtimes.stdout
    up = envctl("up", str(profile), env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert "warning" not in up.stderr  # 127.0.0.3 is loopback: nothing is exposed
        variables = _variables(tmp_path / ".env.test")
        # build-box is an alias only ssh knows: clients get the address it stands for.
        assert urllib.parse.urlsplit(variables["DATABASE_URL"]).hostname == ADDRESS
        assert variables["PGHOST"] == ADDRESS
        with psycopg.connect(variables["DATABASE_URL"], connect_timeout=10) as connection:
            assert connection.execute("SELECT name FROM pets").fetchall() == [("rex",)]
            assert connection.info.pgconn.ssl_in_use
        # The engine behind the sshd is this machine's: the port binds on the ssh host.
        (container,) = [
            container
            for container in docker_client.containers.list(filters={"label": "dev.envctl.managed"})
            if container.labels.get("dev.envctl.state-dir", "").startswith(str(private_state))
        ]
        binding = container.attrs["NetworkSettings"]["Ports"]["5432/tcp"][0]
        assert binding["HostIp"] == ADDRESS
    finally:
        down = envctl("down", str(profile), env=env)
    assert down.returncode == 0, down.stderr
    assert not (tmp_path / ".env.test").exists()
    assert leftovers(docker_client, private_state) == []


def test_an_ssh_engine_that_refuses_the_login_says_so_and_how_to_check(
    tmp_path: Path, ssh_engine: SshEngine
) -> None:
    profile = write_profile(tmp_path, f"name: refused\npostgres: {{version: '{MAJOR}'}}\n")
    wrong_user = f"ssh://nobody@{ADDRESS}:{ssh_engine.port}"
    up = envctl("up", str(profile), env=ssh_engine.env(wrong_user))
    assert up.returncode == 3, up.stderr
    assert f"no Docker engine answers at {wrong_user} (DOCKER_HOST: Authentication failed" in (
        up.stderr
    )
    assert f"`ssh -p {ssh_engine.port} nobody@{ADDRESS} docker version` must work" in up.stderr
    assert "Traceback" not in up.stderr


def test_an_ssh_engine_whose_host_key_is_unknown_is_refused_not_trusted(
    tmp_path: Path, ssh_engine: SshEngine
) -> None:
    home = tmp_path / "home"
    shutil.copytree(ssh_engine.home, home)
    (home / ".ssh" / "known_hosts").unlink()
    env = {**ssh_engine.env(), "HOME": str(home)}
    up = envctl("up", str(write_profile(tmp_path, "name: unknown-host\n")), env=env)
    assert up.returncode == 3, up.stderr
    assert "not found in known_hosts" in up.stderr
    assert "Traceback" not in up.stderr
