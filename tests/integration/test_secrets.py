"""The password stays secret: off every argv, out of the server log, masked in what envctl
prints, and out of `docker inspect`, on cold and warm (cache) starts of both runtimes."""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from provisioner.connection import hide_secrets, password_forms
from provisioner.profile import load_profile
from provisioner.runtime.native.layout import Layout, private_folder
from tests.conftest import envctl, remove_cache_entries, write_profile


def a_password() -> str:
    # Random per test, so that nothing else on the machine can contain it by chance.
    return "pw-" + secrets.token_hex(12)


def profile_text(password: str, settings: str = "", extra: str = "") -> str:
    # A database of its own: with the cache on, no other test's entry is hit, nor ours theirs.
    database = "db_" + secrets.token_hex(6)
    return (
        f"name: secrets\npostgres:\n  version: '15'\n  password: '{password}'\n"
        f"  database: {database}\n{settings}{extra}env:\n  file: null\n"
    )


LOG_ALL = "  settings: {log_statement: all}\n"


@pytest.fixture(params=["cold", "warm"])
def start(
    request: pytest.FixtureRequest, docker: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """A cold start (no cache), or a warm one: the cache on, its entry built beforehand."""
    if request.param == "warm":
        monkeypatch.setenv("ENVCTL_CACHE", "on")
    yield request.param
    remove_cache_entries(docker, tmp_path)  # native entries live in the test's own folder


def build_entry_if_warm(start: str, profile: Path) -> None:
    """For a warm start, one start and down first, which keeps the cluster as an entry."""
    if start != "warm":
        return
    first = envctl("up", str(profile))
    assert first.returncode == 0, first.stderr
    assert "kept the initialized cluster in the cache" in first.stderr
    assert envctl("down", str(profile)).returncode == 0


def expect_up(profile: Path, start: str) -> Any:
    result = envctl("up", str(profile))
    assert result.returncode == 0, result.stderr
    assert ("from the cache" in result.stderr) == (start == "warm"), result.stderr
    return load_profile(profile)


def server_log(runtime: Any, env_id: str) -> str:
    """The server's whole log, as Docker or the native log file keeps it."""
    if runtime.name == "docker":
        import docker

        container = docker.from_env().containers.get(f"envctl-{env_id}")
        return str(container.logs().decode("utf-8", errors="replace"))
    return Layout(private_folder(env_id)).log.read_text(errors="replace")


class ArgvWatch:
    """Reads every process's argv (what `ps -eo args` shows any local user) in a loop."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.caught: list[str] = []
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        # /proc/<pid>/cmdline directly, where `ps` reads it: a pass takes a millisecond, where
        # a `ps` process takes twenty, and a psql that lives for five would slip through.
        while not self._stop.is_set():
            self.passes += 1
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                        argv = handle.read()
                except OSError:
                    continue
                if self.secret in argv:
                    self.caught.append(argv.replace(b"\0", b" ").decode(errors="replace"))


@pytest.mark.docker
def test_no_process_shows_the_password_on_its_command_line(
    tmp_path: Path, runtime: Any, start: str
) -> None:
    password = a_password()
    profile = write_profile(tmp_path, profile_text(password))
    build_entry_if_warm(start, profile)
    with ArgvWatch(password) as watch:
        try:
            expect_up(profile, start)
        finally:
            assert envctl("down", str(profile)).returncode == 0
    assert watch.passes > 10  # it did look, all along the start
    assert watch.caught == []


@pytest.mark.docker
def test_log_statement_all_never_logs_the_password(
    tmp_path: Path, runtime: Any, start: str
) -> None:
    password = a_password()
    profile = write_profile(tmp_path, profile_text(password, LOG_ALL))
    build_entry_if_warm(start, profile)
    env_id = expect_up(profile, start).env_id
    try:
        logged = server_log(runtime, env_id)
    finally:
        assert envctl("down", str(profile)).returncode == 0
    assert "statement: SELECT 1" in logged  # every statement is logged, readiness's too
    assert password not in logged


@pytest.mark.docker
@pytest.mark.parametrize(
    ("command", "statement", "code", "shown_text"),
    [
        # A seed that names the password: with log_statement all, the server logs it
        # verbatim, and envctl shows that log after a failing suite.
        (["run", "--", "false"], "SELECT '{pw}' AS seeded", 1, "AS seeded"),
        # psql quotes the statement that failed.
        (["up"], "SELECT no_such_function('{pw}')", 2, "no_such_function"),
    ],
    ids=["server log after a failed run", "seed error"],
)
def test_what_envctl_shows_of_a_log_has_the_password_masked(
    tmp_path: Path, runtime: Any, command: list[str], statement: str, code: int, shown_text: str
) -> None:
    password = a_password()
    seed = f"  seed:\n    - sql: {statement.format(pw=password)}\n"
    profile = write_profile(tmp_path, profile_text(password, LOG_ALL, seed))
    result = envctl(command[0], str(profile), *command[1:])
    assert result.returncode == code, result.stderr
    shown = result.stdout + result.stderr
    assert shown_text in shown
    assert password not in shown


@pytest.mark.parametrize("key", ["user", "database"])
def test_a_name_over_63_bytes_is_refused_naming_the_key(tmp_path: Path, key: str) -> None:
    # 32 characters, 64 bytes: Postgres would cut it to 63 bytes (and initdb would print the
    # statement that sets the password, password and all).
    password = a_password()
    text = profile_text(password).replace("postgres:\n", f"postgres:\n  {key}: {'ü' * 32}\n")
    if key == "database":
        text = "\n".join(line for line in text.splitlines() if "database: db_" not in line)
    profile = write_profile(tmp_path, text)
    for command in ("validate", "up"):
        result = envctl(command, str(profile))
        assert result.returncode == 2, result.stderr
        assert f"postgres.{key}" in result.stderr
        assert "63 bytes" in result.stderr
        assert password not in result.stdout + result.stderr


@pytest.mark.docker
def test_docker_inspect_shows_no_password(tmp_path: Path, docker: Any, start: str) -> None:
    password = a_password()
    profile = write_profile(tmp_path, profile_text(password))
    build_entry_if_warm(start, profile)
    env_id = expect_up(profile, start).env_id
    try:
        container = docker.containers.get(f"envctl-{env_id}")
        inspected = json.dumps(container.attrs)
    finally:
        assert envctl("down", str(profile)).returncode == 0
    assert not any(
        item.startswith("POSTGRES_PASSWORD=") for item in container.attrs["Config"]["Env"]
    )
    assert password not in inspected


@pytest.mark.parametrize("password", ["plain-token", "it's", "back\\slash", "100%'s\\ta"], ids=repr)
def test_every_form_a_tool_prints_a_password_in_is_masked(password: str) -> None:
    # initdb's bootstrap statement (E'' with quotes and backslashes doubled), a plain literal,
    # a URL.
    escaped = password.replace("\\", "\\\\").replace("'", "''")
    literal = password.replace("'", "''")
    text = (
        f"ALTER USER \"u\" WITH PASSWORD E'{escaped}';\n"
        f"statement: ALTER ROLE u PASSWORD '{literal}'\n"
        f"postgresql://u:{quote(password, safe='')}@h/d\n"
    )
    shown = hide_secrets(text, password_forms(password))
    for form in (password, escaped, literal):
        assert form not in shown
    assert shown.count("****") == 3
