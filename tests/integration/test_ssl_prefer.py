"""`ssl: prefer`: the server offers SSL and lets plain clients in too, on both runtimes."""

from __future__ import annotations

from pathlib import Path

import psycopg
from dotenv import dotenv_values

from provisioner.environments import environment
from provisioner.profile import load_profile
from tests.conftest import RuntimeUnderTest, write_profile

SSL_QUERY = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def with_sslmode(url: str, mode: str) -> str:
    return url.replace("sslmode=prefer", f"sslmode={mode}")


def test_prefer_accepts_plain_and_ssl_clients_and_tells_clients_prefer(
    tmp_path: Path, runtime: RuntimeUnderTest
) -> None:
    profile = write_profile(
        tmp_path,
        "name: prefer\npostgres:\n  version: '15'\n  ssl: prefer\n"
        "env:\n  file: .env.test\n  preset: [url, libpq, medusa]\n",
    )
    with environment(load_profile(profile)):
        values = {k: v or "" for k, v in dotenv_values(tmp_path / ".env.test").items()}
        assert values["PGSSLMODE"] == "prefer"
        assert "sslmode=prefer" in values["DATABASE_URL"]
        ca = Path(values["PGSSLROOTCERT"])
        assert f"sslrootcert={ca}" in values["DATABASE_URL"]
        assert values["NODE_EXTRA_CA_CERTS"] == str(ca)
        assert ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        url = values["DATABASE_URL"]
        # What the env file says: libpq's prefer takes the SSL the server offers.
        with psycopg.connect(url) as conn:
            assert conn.execute(SSL_QUERY).fetchone() == (True,)
        # A client that turns SSL off is let in without it...
        with psycopg.connect(with_sslmode(url, "disable")) as conn:
            assert conn.execute(SSL_QUERY).fetchone() == (False,)
            assert conn.execute("SHOW ssl").fetchone() == ("on",)
        # ...and one that insists on it gets it, verified against the CA envctl wrote.
        for mode in ("require", "verify-full"):
            with psycopg.connect(with_sslmode(url, mode)) as conn:
                assert conn.execute(SSL_QUERY).fetchone() == (True,), mode
    assert not (tmp_path / ".envctl").exists()
    assert not (tmp_path / ".env.test").exists()
