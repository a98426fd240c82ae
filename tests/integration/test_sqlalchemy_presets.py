"""The sqlalchemy presets, read by the real SQLAlchemy with psycopg 3 and with asyncpg."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from tests.conftest import envctl, write_profile

SSL_IN_USE = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def _up(tmp_path: Path, preset: str, ssl: str) -> dict[str, str]:
    profile = write_profile(
        tmp_path, f"name: sa\npostgres:\n  version: '15'\n  ssl: {ssl}\nenv:\n  preset: {preset}\n"
    )
    result = envctl("up", str(profile))
    assert result.returncode == 0, result.stderr
    return {k: v or "" for k, v in dotenv_values(tmp_path / ".env.test").items()}


@pytest.mark.parametrize("ssl", ["disable", "verify-full"])
def test_sqlalchemy_with_psycopg_connects_as_the_env_file_says(
    tmp_path: Path, docker: Any, ssl: str
) -> None:
    from sqlalchemy import create_engine, text

    try:
        values = _up(tmp_path, "sqlalchemy", ssl)
        assert values["DATABASE_URL"].startswith("postgresql+psycopg://")
        engine = create_engine(values["DATABASE_URL"])
        with engine.connect() as conn:
            assert conn.execute(text(SSL_IN_USE)).scalar() is (ssl != "disable")
        engine.dispose()
    finally:
        assert envctl("down", str(tmp_path / "profile.yaml")).returncode == 0


@pytest.mark.parametrize("ssl", ["disable", "verify-full"])
def test_sqlalchemy_with_asyncpg_connects_as_the_env_file_says(
    tmp_path: Path, docker: Any, ssl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def ssl_in_use(url: str) -> bool:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return bool((await conn.execute(text(SSL_IN_USE))).scalar())
        finally:
            await engine.dispose()

    try:
        values = _up(tmp_path, "sqlalchemy-asyncpg", ssl)
        url = values.pop("DATABASE_URL")
        assert url.startswith("postgresql+asyncpg://") and url.endswith(f"?ssl={ssl}")
        # The process a suite runs in: the env file's variables in its environment.
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql/root.crt to fall back on
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        assert asyncio.run(ssl_in_use(url)) is (ssl != "disable")
        if ssl == "verify-full":
            assert os.environ["PGSSLROOTCERT"].endswith("ca.crt")
    finally:
        assert envctl("down", str(tmp_path / "profile.yaml")).returncode == 0
