"""Rendering variables and merging them into env files without losing a byte of the user's."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provisioner.connection import Connection
from provisioner.envfile import (
    EnvFileGuard,
    format_env,
    merge_env,
    render_env,
    write_atomic,
)
from provisioner.presets import PRESETS

CONN = Connection(host="127.0.0.1", port=55432, user="app", password="p@ss:w/rd", database="db one")


def test_url_percent_encodes_credentials_and_database() -> None:
    assert CONN.url == "postgresql://app:p%40ss%3Aw%2Frd@127.0.0.1:55432/db%20one?sslmode=disable"


def test_ipv6_hosts_are_bracketed_in_urls() -> None:
    conn = Connection(host="::1", port=5432, user="u", password="p", database="d")
    assert "@[::1]:5432/" in conn.url


def test_url_parses_back_with_libpq_rules() -> None:
    from psycopg.conninfo import conninfo_to_dict

    parsed = conninfo_to_dict(CONN.url)
    assert parsed["password"] == "p@ss:w/rd"
    assert parsed["dbname"] == "db one"
    assert parsed["port"] == "55432"


def test_medusa_preset_writes_what_medusas_runner_reads() -> None:
    env = render_env(CONN, ["medusa"], {})
    assert env["DB_HOST"] == "127.0.0.1"
    assert env["DB_PORT"] == "55432"  # without it the runner silently uses 5432
    assert env["DB_USERNAME"] == "app"
    assert env["DB_PASSWORD"] == "p@ss:w/rd"
    assert env["DATABASE_URL"] == CONN.url
    assert env["PGSSLMODE"] == "disable"


def test_certificate_variables_are_left_out_without_certificates() -> None:
    env = render_env(CONN, ["libpq"], {})
    assert "PGSSLROOTCERT" not in env and "PGSSLKEY" not in env
    assert env["PGSSLMODE"] == "disable"


def test_certificate_variables_appear_with_certificates(tmp_path: Path) -> None:
    conn = Connection(
        host="127.0.0.1",
        port=1,
        user="u",
        password="p",
        database="d",
        sslmode="verify-full",
        sslrootcert=tmp_path / "ca.crt",
    )
    env = render_env(conn, ["libpq"], {})
    assert env["PGSSLROOTCERT"] == str(tmp_path / "ca.crt")
    assert "sslrootcert=" in render_env(conn, ["url"], {})["DATABASE_URL"]


def test_custom_templates_override_presets() -> None:
    env = render_env(CONN, ["url"], {"DATABASE_URL": "{host}:{port}", "X": "{database}"})
    assert env == {"DATABASE_URL": "127.0.0.1:55432", "X": "db one"}


def test_every_preset_renders() -> None:
    for name in PRESETS:
        assert render_env(CONN, [name], {})


@pytest.mark.parametrize(
    "value", ["plain", "with space", 'quo"te', "back\\slash", "new\nline", "dollar$HOME", ""]
)
def test_dotenv_values_read_back_unchanged_by_python_dotenv(value: str) -> None:
    from dotenv import dotenv_values

    text = format_env({"KEY": value, "AFTER": "x"}, "dotenv")
    assert dotenv_values(stream=io.StringIO(text)) == {"KEY": value, "AFTER": "x"}


def test_shell_format_round_trips_through_a_real_shell() -> None:
    variables = {"A": "it's $HOME", "B": "x y\nz `w`"}
    script = format_env(variables, "shell") + 'printf "%s|%s" "$A" "$B"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == "it's $HOME|x y\nz `w`"


def test_json_format() -> None:
    assert json.loads(format_env({"A": "1"}, "json")) == {"A": "1"}


def test_merge_updates_in_place_and_keeps_everything_else() -> None:
    existing = "# my settings\nexport DB_PORT=5432\nAPI_KEY=keep-me\n\nDB_HOST=old\n"
    merged = merge_env(existing, {"DB_PORT": "55432", "DB_HOST": "127.0.0.1", "NEW": "n"})
    lines = merged.splitlines()
    assert lines[0] == "# my settings"
    assert lines[1] == "export DB_PORT=55432"
    assert lines[2] == "API_KEY=keep-me"
    assert lines[4] == "DB_HOST=127.0.0.1"
    assert lines[-1] == "NEW=n"


def test_merge_drops_duplicate_assignments_of_managed_keys() -> None:
    merged = merge_env("A=1\nA=2\n", {"A": "3"})
    assert merged == "A=3\n"


def test_merge_into_file_without_trailing_newline() -> None:
    merged = merge_env("KEEP=1", {"NEW": "2"})
    assert merged.startswith("KEEP=1\n")
    assert merged.endswith("NEW=2\n")


def test_existing_env_file_is_restored_byte_for_byte(tmp_path: Path) -> None:
    target = tmp_path / ".env.test"
    original = b"# comment\r\nDATABASE_URL=mine\r\nOTHER=\xff\xfe raw bytes\n"
    target.write_bytes(original)
    os.chmod(target, 0o640)
    guard = EnvFileGuard(tmp_path / "state")
    (tmp_path / "state").mkdir()
    guard.write(target, {"DATABASE_URL": "postgresql://x", "PGPORT": "1"})
    assert target.stat().st_mode & 0o777 == 0o640  # its own mode, never readable by others
    assert b"DATABASE_URL=postgresql://x" in target.read_bytes()
    assert b"OTHER=\xff\xfe raw bytes" in target.read_bytes()
    assert guard.backup.stat().st_mode & 0o777 == 0o600
    # A second write (e.g. a restart) must not overwrite the backup of the original.
    guard.write(target, {"DATABASE_URL": "postgresql://y"})
    assert str(guard.restore()) == f"restored {target}"
    assert target.read_bytes() == original
    assert target.stat().st_mode & 0o777 == 0o640
    assert not guard.record.exists() and not guard.backup.exists()
    assert guard.restore() is None  # idempotent


def test_env_file_envctl_created_is_removed_on_restore(tmp_path: Path) -> None:
    target = tmp_path / "sub" / ".env.test"
    state = tmp_path / "state"
    state.mkdir()
    guard = EnvFileGuard(state)
    guard.write(target, {"A": "1"})
    assert target.read_text().endswith("A=1\n")
    assert str(guard.restore()) == f"removed {target} (envctl created it)"
    assert not target.exists()


def test_write_leaves_no_temp_files(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    EnvFileGuard(state).write(tmp_path / ".env.test", {"A": "1"})
    leftovers = [p.name for p in tmp_path.iterdir() if "envctl-tmp" in p.name]
    assert leftovers == []


def test_python_dotenv_style_reader_agrees(tmp_path: Path) -> None:
    # Read the file back the way a dotenv loader does, via a tiny independent parser in a
    # subprocess (no shared code), for values that need quoting.
    state = tmp_path / "state"
    state.mkdir()
    target = tmp_path / ".env.test"
    values = {"A": "has space", "B": 'q"uote', "C": "plain"}
    EnvFileGuard(state).write(target, values)
    reader = (
        "import sys,json,codecs\n"
        "out={}\n"
        "for line in open(sys.argv[1]):\n"
        "    line=line.rstrip('\\n')\n"
        "    if not line or line.startswith('#'): continue\n"
        "    k,v=line.split('=',1)\n"
        "    if v.startswith('\"'): v=codecs.decode(v[1:-1],'unicode_escape')\n"
        "    out[k]=v\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", reader, str(target)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == values


def test_write_atomic_mode_bytes_and_no_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "server.key"
    data = b"-----BEGIN PRIVATE KEY-----\n\x00\xff binary-safe\n"
    old_umask = os.umask(0)  # the most permissive umask must still yield 0600
    try:
        write_atomic(target, data)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == data
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.key"]


def test_write_atomic_replaces_a_wider_file(tmp_path: Path) -> None:
    target = tmp_path / "client.key"
    target.write_bytes(b"old contents that are longer than the new ones")
    target.chmod(0o644)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["client.key"]


def test_write_atomic_cleans_up_when_the_rename_fails(tmp_path: Path) -> None:
    # A directory in the way makes os.replace fail after the temp file has been written.
    target = tmp_path / "in-the-way"
    target.mkdir()
    (target / "child").touch()
    with pytest.raises(OSError):
        write_atomic(target, b"secret")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in-the-way"]


def _up_then(tmp_path: Path, original: bytes | None, edit: Any) -> tuple[Path, Any]:
    """Write an env file as `up` does, let `edit` change it, restore it as `down` does."""
    target = tmp_path / ".env.test"
    if original is not None:
        target.write_bytes(original)
    state = tmp_path / "state"
    state.mkdir()
    guard = EnvFileGuard(state)
    guard.write(target, {"DATABASE_URL": "postgres://envctl@127.0.0.1:5/test", "PGPORT": "5"})
    edit(target)
    return target, guard.restore()


def test_an_edit_keeps_the_users_lines_and_takes_out_envctls(tmp_path: Path) -> None:
    original = b"# app\nDATABASE_URL=postgres://mine\nAPP=1\n"

    def edit(target: Path) -> None:
        text = target.read_text().replace("APP=1\n", "APP=2\nNEW=x\n")
        target.write_text(text.replace("PGPORT=5", "PGPORT=6"))

    target, restored = _up_then(tmp_path, original, edit)
    assert target.read_bytes() == b"# app\nDATABASE_URL=postgres://mine\nAPP=2\nNEW=x\n"
    assert restored.kept == 2
    assert "keeping the 2 line(s)" in str(restored)


def test_an_edit_of_a_file_envctl_created_keeps_only_the_users_lines(tmp_path: Path) -> None:
    def edit(target: Path) -> None:
        target.write_text(target.read_text() + "MINE=1\n")

    target, restored = _up_then(tmp_path, None, edit)
    assert target.read_text() == "MINE=1\n"
    assert restored.kept == 1 and not restored.created
    assert str(restored).startswith(f"restored {target}, keeping the 1 line(s)")


def test_a_deleted_line_of_envctls_brings_back_the_original(tmp_path: Path) -> None:
    original = b"DATABASE_URL=postgres://mine\nAPP=1"  # no newline at the end

    def edit(target: Path) -> None:
        lines = target.read_text().splitlines(keepends=True)
        target.write_text("".join(x for x in lines if not x.startswith("DATABASE_URL")) + "N=1\n")

    target, restored = _up_then(tmp_path, original, edit)
    assert target.read_bytes() == b"APP=1\nN=1\nDATABASE_URL=postgres://mine\n"
    assert restored.kept == 1


def test_no_edit_comes_back_byte_for_byte_even_without_a_final_newline(tmp_path: Path) -> None:
    original = b"APP=1\r\nODD=\xe2\x9c\x93"
    target, restored = _up_then(tmp_path, original, lambda target: None)
    assert target.read_bytes() == original
    assert restored.kept == 0 and str(restored) == f"restored {target}"


def test_a_file_envctl_created_and_the_user_emptied_is_removed(tmp_path: Path) -> None:
    target, restored = _up_then(tmp_path, None, lambda target: target.write_text("\n"))
    assert restored.kept == 0
    assert not target.exists()
