"""The cache key: everything that shapes the initial data changes it; nothing else does."""

from __future__ import annotations

from typing import Any

import pytest

from provisioner.cache.keys import cache_key
from provisioner.profile import PostgresConfig

BASE: dict[str, Any] = {"version": "15", "seed": [{"sql": "CREATE TABLE t (n int)"}]}


def _key(image: str = "sha256:img", digests: tuple[str, ...] = ("d1",), **changes: Any) -> str:
    return cache_key(PostgresConfig.model_validate({**BASE, **changes}), image, list(digests))


def test_the_same_profile_gives_the_same_key() -> None:
    assert _key() == _key()


@pytest.mark.parametrize(
    "changes",
    [
        {"version": "17"},
        {"locale": "C"},
        {"encoding": "LATIN1"},
        {"user": "app"},
        {"database": "other"},
        {"durable": True},
        {"roles": ["owner"]},
        {"extensions": ["citext"]},
        {"schemas": ["app"]},
        {"seed": [{"sql": "CREATE TABLE u (n int)"}]},
        {"seed_options": {"owners": "drop"}},
        {"migrate": {"command": ["true"], "inputs": ["m/*.sql"]}},
        {"template1": True},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_what_shapes_the_initial_data_changes_the_key(changes: dict[str, Any]) -> None:
    assert _key(**changes) != _key()


def test_the_image_and_the_seed_bytes_change_the_key() -> None:
    assert _key(image="sha256:other") != _key()
    assert _key(digests=("d2",)) != _key()


@pytest.mark.parametrize(
    "changes",
    [
        {"password": "s3cret"},  # no secret decides (or is derivable from) an entry's name
        {"port": 55432},
        {"host": "127.0.0.2"},
        {"settings": {"work_mem": "64MB"}},  # settings are given at each start
        {"ssl": "require"},  # certificates are made for each environment
        {"startup_timeout": 5},
        {"template1": False},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_what_each_start_sets_itself_leaves_the_key_alone(changes: dict[str, Any]) -> None:
    assert _key(**changes) == _key()
