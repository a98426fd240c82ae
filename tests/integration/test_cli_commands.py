"""The CLI commands that wrap library functions tested elsewhere: each works as documented."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.environments import environment, find
from provisioner.profile import load_profile
from provisioner.runtime.binaries import Install
from tests.conftest import envctl, write_profile


def test_inspect_describes_a_real_backup_as_json(
    tmp_path: Path, real_dumps: dict[int, dict[str, Path]]
) -> None:
    result = envctl("inspect", str(real_dumps[17]["custom"]), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["format"], info["server_major"], info["archive_version"]) == ("custom", 17, "1.16")
    assert info["counts"]["tables"] == 2
    text = envctl("inspect", str(real_dumps[15]["plain_gzip"]))
    assert text.returncode == 0, text.stderr
    assert "plain" in text.stdout and "gzip" in text.stdout
    bad = tmp_path / "notes.txt"
    bad.write_text("not a backup\n")
    refused = envctl("inspect", str(bad))
    assert refused.returncode == 2 and str(bad) in refused.stderr


def test_globals_first_then_an_archive_with_owners_kept(
    tmp_path: Path, docker: Any, real_dumps: dict[int, dict[str, Path]]
) -> None:
    dumps = real_dumps[15]
    text = (
        "name: keep\npostgres:\n  version: '15'\n  seed_options: {owners: keep}\n"
        f"  seed:\n    - {str(dumps['globals'])!r}\n    - {str(dumps['custom'])!r}\n"
        "env:\n  file: null\n"
    )
    profile = load_profile(write_profile(tmp_path, text))
    with environment(profile) as env, psycopg.connect(env.url) as conn:
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE tablename = 'products'"
        ).fetchall()
    assert owners == [("app_owner",)]  # the role came from the globals dump, owners kept


def test_doctor_passes_a_healthy_setup_and_names_the_cause_of_a_broken_one(
    tmp_path: Path, docker: Any
) -> None:
    profile = write_profile(
        tmp_path, "name: doc\npostgres:\n  version: '15'\nenv:\n  preset: [url, medusa]\n"
    )
    assert envctl("up", str(profile)).returncode == 0
    try:
        healthy = envctl("doctor", str(profile))
        assert healthy.returncode == 0, healthy.stderr
        assert "all checks passed" in healthy.stderr
        env_file = tmp_path / ".env.test"
        env_file.write_text(
            "".join(
                line + "\n"
                for line in env_file.read_text().splitlines()
                if not line.startswith("DB_PORT=")
            )
        )
        broken = envctl("doctor", str(profile), "--json")
        assert broken.returncode == 3
        checks = json.loads(broken.stdout)
        failed = " ".join(c["evidence"] + " " + (c["fix"] or "") for c in checks if not c["ok"])
        assert "DB_PORT" in failed and "5432" in failed
        running = find(load_profile(profile))
        assert running is not None and running.password not in broken.stdout + broken.stderr
    finally:
        assert envctl("down", str(profile)).returncode == 0


def test_presets_runtimes_and_schema_print_what_they_promise(
    tmp_path: Path, docker: Any, installs: Any
) -> None:
    presets = json.loads(envctl("presets", "--json").stdout)
    assert presets["medusa"]["DB_PORT"] == "{port}"
    assert set(presets) >= {"url", "libpq", "medusa", "prisma", "django", "rails"}
    runtimes = json.loads(envctl("runtimes", "--json").stdout)
    assert runtimes["docker"]["available"] is True
    assert {(i["major"], i["ssl"]) for i in runtimes["native"]} >= {(15, True), (18, False)}
    schema = json.loads(envctl("schema").stdout)
    committed = Path(__file__).parents[2] / "profiles" / "envctl.schema.json"
    assert schema == json.loads(committed.read_text())


def test_the_port_binds_to_loopback_and_a_wider_bind_is_warned_about(
    tmp_path: Path, docker: Any
) -> None:
    (tmp_path / "a").mkdir()
    seeded = "name: lo\npostgres:\n  version: '15'\n  seed: [{sql: SELECT 1}]\n"
    with environment(load_profile(write_profile(tmp_path / "a", seeded))) as env:
        # A seed's server gets Docker's network (test_placement.py has the others).
        bindings = docker.api.port(f"envctl-{env.env_id}", 5432)
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
    (tmp_path / "b").mkdir()
    wide = write_profile(
        tmp_path / "b", "name: wide\npostgres:\n  version: '15'\n  host: 0.0.0.0\n"
    )
    result = envctl("run", str(wide), "--", "true")
    assert result.returncode == 0, result.stderr
    assert "warning: postgres.host 0.0.0.0 exposes the database" in result.stderr
    assert "postgres.password is set" not in result.stderr  # a random one: nothing to add
    (tmp_path / "c").mkdir()
    fixed = write_profile(
        tmp_path / "c",
        "name: fixed\npostgres:\n  version: '15'\n  host: 0.0.0.0\n  password: s3cret-known\n",
    )
    result = envctl("run", str(fixed), "--", "true")
    assert result.returncode == 0, result.stderr
    assert (
        "warning: postgres.password is set in the profile, so whoever reads the profile can log "
        "in to this exposed port; remove the key for a random password" in result.stderr
    )
    assert "s3cret-known" not in result.stderr


def test_the_quickstart_runs_without_docker_on_the_pip_installed_postgres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded_18: Install
) -> None:
    import shutil

    shutil.copy(Path(__file__).parents[2] / "profiles" / "quickstart.yaml", tmp_path)
    monkeypatch.delenv("ENVCTL_RUNTIME", raising=False)  # the profile's own runtime: auto
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # nothing answers there
    result = envctl("run", str(tmp_path / "quickstart.yaml"))
    assert result.returncode == 0, result.stderr
    assert "runtime: native, because no Docker engine answers at tcp://127.0.0.1:9" in result.stderr
    assert "DATABASE_URL is set" in result.stdout
    assert not (tmp_path / ".env.test").exists()


def test_up_and_repro_print_the_connection_as_json_for_programs(
    tmp_path: Path, docker: Any, real_dumps: dict[int, dict[str, Path]]
) -> None:
    profile = write_profile(tmp_path, "name: jsonup\npostgres:\n  version: '15'\n")
    result = envctl("up", str(profile), "--json", "--show-password")
    try:
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        env_file = (tmp_path / ".env.test").read_text()
        assert f"DATABASE_URL={shown['variables']['DATABASE_URL']}" in env_file
        assert shown["password"] in env_file and shown["env_file"] == str(tmp_path / ".env.test")
        assert (shown["runtime"], shown["database"], shown["user"]) == (
            "docker",
            "test",
            "postgres",
        )
        masked = json.loads(envctl("up", str(profile), "--json").stdout or "{}")
        assert masked == {}  # already up: an error, no half JSON
    finally:
        assert envctl("down", str(profile)).returncode == 0
    dump = real_dumps[15]["custom"]
    repro = envctl("repro", str(dump), "--json")
    try:
        assert repro.returncode == 0, repro.stderr
        shown = json.loads(repro.stdout)
        assert shown["password"] == "****" and "****" in shown["url"]
        assert shown["port"] > 0 and shown["runtime"] == "docker"
    finally:
        assert envctl("down", str(dump)).returncode == 0
