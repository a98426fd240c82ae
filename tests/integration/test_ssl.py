"""SSL modes end to end: clients built only from the written variables agree with the server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dotenv import dotenv_values

from provisioner.environments import environment
from provisioner.profile import load_profile
from tests.conftest import TEST_IMAGE_TEMPLATE, remove_cache_entries, write_profile

pytestmark = pytest.mark.docker

SSL_QUERY = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def ssl_profile(tmp_path: Path, mode: str, client_cert: bool = False, major: int = 15) -> Any:
    text = (
        f"name: tls\npostgres:\n  version: '{major}'\n"
        f"  ssl:\n    mode: {mode}\n    client_cert: {str(client_cert).lower()}\n"
        "env:\n  file: .env.test\n  preset: [url, libpq, medusa]\n"
    )
    return load_profile(write_profile(tmp_path, text))


def file_values(path: Path) -> dict[str, str]:
    return {key: value or "" for key, value in dotenv_values(path).items()}


def connect_with_libpq_env(values: dict[str, str], **overrides: Any) -> psycopg.Connection[Any]:
    """Connect as libpq does from PG* variables alone (no URL)."""
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in values.items() if k.startswith("PG")})
    try:
        return psycopg.connect("", **overrides)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize(
    ("mode", "client_cert", "expect_ssl"),
    [
        ("disable", False, False),
        ("require", False, True),
        ("verify-ca", False, True),
        ("verify-full", False, True),
        ("verify-full", True, True),
    ],
)
def test_clients_from_the_written_variables_agree_with_the_server(
    tmp_path: Path, docker: Any, mode: str, client_cert: bool, expect_ssl: bool
) -> None:
    profile = ssl_profile(tmp_path, mode, client_cert)
    with environment(profile) as env:
        values = file_values(tmp_path / ".env.test")
        assert values["PGSSLMODE"] == mode
        assert f"sslmode={mode}" in values["DATABASE_URL"]
        with psycopg.connect(values["DATABASE_URL"]) as conn:
            assert conn.execute(SSL_QUERY).fetchone() == (expect_ssl,)
        with connect_with_libpq_env(values) as conn:
            assert conn.execute(SSL_QUERY).fetchone() == (expect_ssl,)
        if expect_ssl:
            ca = Path(values["PGSSLROOTCERT"])
            assert values["NODE_EXTRA_CA_CERTS"] == str(ca)
            assert ca.stat().st_mode & 0o777 == 0o600
            certs_dir = ca.parent
            # A client that does not use SSL is refused by pg_hba itself.
            with pytest.raises(psycopg.OperationalError, match="no encryption"):
                psycopg.connect(env.connection.url.replace(f"sslmode={mode}", "sslmode=disable"))
        else:
            assert "PGSSLROOTCERT" not in values
            with psycopg.connect(env.url) as conn:
                assert conn.execute("SHOW ssl").fetchone() == ("off",)
        if client_cert:
            assert Path(values["PGSSLKEY"]).stat().st_mode & 0o777 == 0o600
    if expect_ssl:
        assert not certs_dir.exists()
        assert not (tmp_path / ".envctl").exists()
    assert not (tmp_path / ".env.test").exists()


def test_verify_full_fails_for_a_name_not_in_the_certificate(tmp_path: Path, docker: Any) -> None:
    with environment(ssl_profile(tmp_path, "verify-full")) as env:
        values = file_values(tmp_path / ".env.test")
        # Same address, but the client checks the certificate against another name.
        with pytest.raises(psycopg.OperationalError, match="does not match host name"):
            connect_with_libpq_env(values, host="db.example.invalid", hostaddr=env.host)
        # The names envctl promises are in the certificate work the same way.
        with connect_with_libpq_env(values, host="localhost", hostaddr=env.host) as conn:
            assert conn.execute(SSL_QUERY).fetchone() == (True,)


def test_verify_ca_fails_against_another_ca(tmp_path: Path, docker: Any) -> None:
    from provisioner.tls import generate_certificates

    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(generate_certificates(hostnames=["localhost"]).ca_cert)
    with environment(ssl_profile(tmp_path, "verify-ca")):
        values = file_values(tmp_path / ".env.test")
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            connect_with_libpq_env(values, sslrootcert=str(other_ca))


def test_client_cert_mode_refuses_a_client_without_the_certificate(
    tmp_path: Path, docker: Any
) -> None:
    with environment(ssl_profile(tmp_path, "verify-full", client_cert=True)):
        values = file_values(tmp_path / ".env.test")
        without = {k: v for k, v in values.items() if k not in ("PGSSLCERT", "PGSSLKEY")}
        missing = tmp_path / "no-such-client.crt"
        with pytest.raises(psycopg.OperationalError, match="certificate"):
            connect_with_libpq_env(without, sslcert=str(missing), sslkey=str(missing))


def test_seed_regression_require_against_a_server_without_ssl(tmp_path: Path, docker: Any) -> None:
    """The failure this project started from: the client insists on SSL, the server has none."""
    with (
        environment(ssl_profile(tmp_path, "disable")) as env,
        pytest.raises(psycopg.OperationalError, match="server does not support SSL"),
    ):
        psycopg.connect(env.url.replace("sslmode=disable", "sslmode=require"))


def test_an_image_whose_postgres_is_not_uid_999_serves_ssl_and_seeds_also_from_the_cache(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alpine's postgres is uid 70: envctl's key and seed files must still be the server's."""
    tag = "envctl-test/postgres-uid70:15"
    base = docker.images.get(TEST_IMAGE_TEMPLATE.format(major=15)).attrs["Config"]
    holder = docker.containers.create(
        TEST_IMAGE_TEMPLATE.format(major=15),
        entrypoint=["bash", "-c"],
        command=[
            "groupmod -g 70 postgres && usermod -u 70 -g 70 postgres"
            " && chown -R 70:70 /var/run/postgresql /var/lib/postgresql"
        ],
    )
    try:
        holder.start()
        assert holder.wait(timeout=60)["StatusCode"] == 0
        conf = {"Entrypoint": base["Entrypoint"], "Cmd": base["Cmd"]}
        holder.commit(repository=tag.split(":")[0], tag="15", conf=conf)
    finally:
        holder.remove(v=True)
    monkeypatch.setenv("ENVCTL_CACHE", "on")
    (tmp_path / "seed.sql").write_text(f"-- {tmp_path}\nCREATE TABLE seeded AS SELECT 1 AS one;\n")
    text = (
        f"name: uid70\npostgres:\n  version: '15'\n  image: {tag}\n  ssl: require\n"
        "  seed: [seed.sql]\nenv:\n  file: null\n"
    )
    profile = load_profile(write_profile(tmp_path, text))
    try:
        for start in ("builds the cache entry", "comes from it"):
            notes: list[str] = []
            with environment(profile, notify=notes.append) as env:
                assert any("from the cache" in n for n in notes) == (start == "comes from it")
                with psycopg.connect(env.url) as conn:
                    assert conn.execute(SSL_QUERY).fetchone() == (True,), start
                    assert conn.execute("SELECT one FROM seeded").fetchone() == (1,), start
    finally:
        remove_cache_entries(docker, tmp_path)
        docker.images.remove(tag, force=True)
