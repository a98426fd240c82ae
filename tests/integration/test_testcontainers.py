"""EnvctlPostgres keeps testcontainers' PostgresContainer interface: one import swapped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.testcontainers import EnvctlPostgres
from tests.conftest import leftovers, write_profile


def rows(pg: Any) -> int:
    """A fixture's code as written for testcontainers: it knows only PostgresContainer's API."""
    with psycopg.connect(pg.get_connection_url(driver=None)) as conn:
        row = conn.execute("SELECT count(*) FROM pg_class").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.filterwarnings("ignore:testcontainers.postgres is deprecated")
def test_it_builds_the_urls_testcontainers_builds(docker: Any) -> None:
    from testcontainers.postgres import PostgresContainer

    with EnvctlPostgres("postgres:15", username="app", password="s3cret-_x", dbname="shop") as pg:
        theirs = PostgresContainer(
            "postgres:15", username="app", password="s3cret-_x", dbname="shop"
        )
        theirs._container = object()  # as if started: it only builds a URL from host and port
        theirs.get_container_host_ip = lambda: pg.get_container_host_ip()  # type: ignore[method-assign]
        theirs.get_exposed_port = lambda port: pg.get_exposed_port(port)  # type: ignore[method-assign]
        for kwargs in ({}, {"driver": None}, {"driver": "psycopg"}, {"driver": "asyncpg"}):
            assert pg.get_connection_url(**kwargs) == theirs.get_connection_url(**kwargs)
        assert pg.get_connection_url(host="db.internal").startswith("postgresql+psycopg2://")
        assert (pg.username, pg.password, pg.dbname) == ("app", "s3cret-_x", "shop")
        assert rows(pg) > 0
        with psycopg.connect(pg.get_connection_url(driver=None)) as conn:
            assert conn.execute("SHOW server_version").fetchone()[0].startswith("15")  # type: ignore[index]


def test_several_at_once_without_a_profile_and_each_removed_on_stop(
    tmp_path: Path, docker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # No profile: envctl's defaults (this machine has no PG 16, envctl's default major).
    first, second = EnvctlPostgres("postgres:15"), EnvctlPostgres("postgres:17", driver=None)
    first.start()
    try:
        second.start()
        assert first.get_exposed_port(5432) != second.get_exposed_port(5432)
        assert rows(first) > 0 and rows(second) > 0
        assert second.get_connection_url().startswith("postgresql://")
        assert len(first.password) >= 20  # envctl's random password, not testcontainers' "test"
    finally:
        first.stop()
        second.stop()
        second.stop()  # harmless twice, as testcontainers' is
    assert list(tmp_path.iterdir()) == [tmp_path / "envctl-state"] or not any(
        p.name.startswith(".env") for p in tmp_path.iterdir()
    )
    assert leftovers(docker, tmp_path) == []
    with pytest.raises(Exception, match="has not been started"):
        first.get_connection_url()


def test_a_profile_brings_its_seed_and_ssl_and_an_error_still_tears_down(
    tmp_path: Path, docker: Any
) -> None:
    profile = write_profile(
        tmp_path,
        "name: tc\npostgres:\n  version: '15'\n  ssl: require\n"
        "  seed:\n    - sql: CREATE TABLE items AS SELECT generate_series(1, 7) AS n\n"
        "env:\n  file: null\n",
    )
    stopped_by = RuntimeError("the suite failed")
    with (
        pytest.raises(RuntimeError, match="the suite failed"),
        EnvctlPostgres(profile=profile, driver=None) as pg,
    ):
        url = pg.get_connection_url()
        assert "sslmode=require" in url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (7,)
            ssl = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert ssl.fetchone() == (True,)
        raise stopped_by
    assert leftovers(docker, tmp_path) == []
