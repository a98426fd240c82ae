"""The cache of initialized, seeded clusters: hits, misses, secrets, listing, pruning, races."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from provisioner.environments import environment, up
from provisioner.profile import load_profile
from tests.conftest import envctl, remove_cache_entries, write_profile

SEED = "CREATE TABLE items AS SELECT n, md5(n::text) AS h FROM generate_series(1, 2000) AS n;\n"


@pytest.fixture
def cache(docker: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The cache on, with a seed unique to this test so that no other test's entry is hit."""
    monkeypatch.setenv("ENVCTL_CACHE", "on")
    (tmp_path / "seed.sql").write_text(f"-- {tmp_path}\n" + SEED)
    yield docker
    remove_cache_entries(docker, tmp_path)


def seeded(folder: Path, name: str = "cached") -> Any:
    text = f"name: {name}\npostgres:\n  version: '15'\n  seed: [seed.sql]\nenv:\n  file: null\n"
    return load_profile(write_profile(folder, text, name=f"{name}.yaml"))


def count_and_password_check(env: Any) -> tuple[int, str]:
    with psycopg.connect(env.url) as conn:
        row = conn.execute("SELECT count(*) FROM items").fetchone()
    assert row is not None
    return int(row[0]), env.password


def build_then_start_from_the_cache(profile: Any) -> list[str]:
    """Start twice: the first start keeps its cluster, the second comes from the cache with
    the seeded data, a password of its own, and the template for reset. Returns the second
    start's notes."""
    from provisioner.environments import reset

    notes: list[str] = []
    with environment(profile, notify=notes.append) as first:
        assert count_and_password_check(first)[0] == 2000
        old_url = first.url
    assert any("kept the initialized cluster in the cache" in n for n in notes)
    notes.clear()
    with environment(profile, notify=notes.append) as second:
        assert any("from the cache" in n for n in notes)
        assert count_and_password_check(second)[0] == 2000
        assert second.password != first.password
        # The first environment's password does not open the second: no secret is shared.
        stale = old_url.replace(f":{first.port}/", f":{second.port}/")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(stale)
        with psycopg.connect(second.url, autocommit=True) as conn:
            conn.execute("DELETE FROM items")
        reset(second)  # the template came along too
        assert count_and_password_check(second)[0] == 2000
    return notes


def test_a_second_start_comes_from_the_cache_with_its_own_password(
    tmp_path: Path, cache: Any
) -> None:
    notes = build_then_start_from_the_cache(seeded(tmp_path))
    assert not any("running inline SQL" in n or "restoring" in n for n in notes)


def test_by_default_the_second_start_of_a_profile_keeps_its_cluster(
    tmp_path: Path, cache: Any, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CI job on a fresh machine starts its profile once: keeping an entry (half a second)
    # would be paid for nothing. What has been started here before will be again.
    monkeypatch.delenv("ENVCTL_CACHE")
    profile = seeded(tmp_path, f"auto-{runtime.name}")
    said = []
    for _ in range(3):
        notes: list[str] = []
        with environment(profile, notify=notes.append) as env:
            assert count_and_password_check(env)[0] == 2000
        said.append(
            (
                any("from the cache" in n for n in notes),
                any("kept the initialized cluster in the cache" in n for n in notes),
            )
        )
    assert said == [(False, False), (False, True), (True, False)]
    # ENVCTL_CACHE=off looks nothing up: the entry is there, and not used.
    monkeypatch.setenv("ENVCTL_CACHE", "off")
    notes = []
    with environment(profile, notify=notes.append):
        assert not any("cache" in n for n in notes)


def cache_image_of(client: Any, folder: Path) -> Any:
    """The one cache entry built from a profile in `folder`."""
    from provisioner.runtime.labels import CACHE_LABEL

    mine = [
        image
        for image in client.images.list(filters={"label": CACHE_LABEL})
        if str(folder) in image.labels.get("dev.envctl.cache-profile", "")
    ]
    assert len(mine) == 1, mine
    return mine[0]


def test_an_entry_keeps_no_secret_of_the_environment_it_was_built_from(
    tmp_path: Path, cache: Any
) -> None:
    # A commit keeps the container's variables and labels unless told otherwise, and every
    # file in its layer: the password, the owner, the server's private key must stay behind.
    text = (
        "name: secrets\npostgres:\n  version: '15'\n  seed: [seed.sql]\n"
        "  ssl: {mode: verify-full}\nenv:\n  file: null\n"
    )
    profile = load_profile(write_profile(tmp_path, text, name="secrets.yaml"))
    with environment(profile) as first:
        assert first.connection.sslrootcert is not None  # it did have certificates
    image = cache_image_of(cache, tmp_path)
    assert first.password not in json.dumps(image.attrs)  # also the committed container's
    assert first.env_id not in json.dumps(image.attrs["Config"])
    # Not containers.run(remove=True): that leaves the image's anonymous volume behind.
    looker = cache.containers.create(
        image.id,
        entrypoint=["bash", "-c", "ls -d /etc/envctl /dev/shm/envctl 2>/dev/null; true"],
        user="root",
    )
    try:
        looker.start()
        looker.wait(timeout=60)
        found = looker.logs()
    finally:
        looker.remove(force=True, v=True)
    assert found.decode().strip() == ""
    # From the cache, with certificates of its own.
    with environment(profile) as second, psycopg.connect(second.url) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (2000,)
        assert conn.pgconn.ssl_in_use


def test_a_cached_cluster_admits_no_tcp_client_before_it_has_its_own_password(
    tmp_path: Path, cache: Any
) -> None:
    # Until the boot script's helper has set the new password, the cluster from the cache
    # would take the one it was built with. Here the helper can never finish (the database
    # it connects to does not exist), so the window stays open for as long as we look.
    from provisioner.runtime import ServerSpec
    from provisioner.runtime.docker import DockerRuntime
    from provisioner.runtime.labels import ENV_LABEL, MANAGED_LABEL

    profile = seeded(tmp_path, "window")
    with environment(profile) as first:
        built_with = first.password
    image = cache_image_of(cache, tmp_path)
    runtime = DockerRuntime()
    env_id = "window-never-ready"
    spec = ServerSpec(
        env_id=env_id,
        image=image.tags[0],
        major=15,
        user="postgres",
        password="the-new-one",
        database="no_such_database",
        bind_host="127.0.0.1",
        port=None,
        settings={"fsync": "off"},
        labels={MANAGED_LABEL: "true", ENV_LABEL: env_id},
        cacheable=True,
        from_cache=image.tags[0],
    )
    started = runtime.start(spec)
    try:
        deadline = time.monotonic() + 30
        while "ready to accept connections" not in runtime.log_tail(env_id):
            assert time.monotonic() < deadline, runtime.log_tail(env_id)
            time.sleep(0.05)
        for password in (built_with, "the-new-one"):
            with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
                psycopg.connect(
                    host="127.0.0.1",
                    port=started.port,
                    user="postgres",
                    password=password,
                    dbname="test",
                    connect_timeout=5,
                )
    finally:
        runtime.remove(env_id)


def test_durable_and_test_sized_clusters_are_entries_of_their_own(
    tmp_path: Path, cache: Any
) -> None:
    # A test-sized cluster has 1 MB WAL segments (a start from the cache copies its first
    # segment up from the image's layer, whole); a durable one keeps initdb's 16 MB.
    sizes = []
    for durable in ("false", "true"):
        text = (
            "name: walseg\npostgres:\n  version: '15'\n  seed: [seed.sql]\n"
            f"  durable: {durable}\nenv:\n  file: null\n"
        )
        profile = load_profile(write_profile(tmp_path, text, name="walseg.yaml"))
        notes: list[str] = []
        with environment(profile, notify=notes.append) as env, psycopg.connect(env.url) as conn:
            assert not any("from the cache" in n for n in notes)
            row = conn.execute("SHOW wal_segment_size").fetchone()
            assert row is not None
            sizes.append(row[0])
    assert sizes == ["1MB", "16MB"]


def test_changing_one_byte_of_a_seed_is_a_miss(tmp_path: Path, cache: Any) -> None:
    profile = seeded(tmp_path)
    with environment(profile):
        pass
    seed = tmp_path / "seed.sql"
    seed.write_text(seed.read_text().replace("2000", "2001"))
    notes: list[str] = []
    with environment(profile, notify=notes.append) as env:
        assert not any("from the cache" in n for n in notes)
        assert count_and_password_check(env)[0] == 2001
    rows = json.loads(envctl("cache", "ls", "--json").stdout)
    mine = [row for row in rows if str(tmp_path) in row["profile"]]
    assert len(mine) == 2 and len({row["key"] for row in mine}) == 2


def test_a_remembered_seed_edited_in_place_with_its_old_mtime_is_a_miss(
    tmp_path: Path, cache: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hit for a seed remembered unchanged neither reads nor hashes it again; an edit that
    # keeps the size and puts the mtime back must still be noticed (by the ctime).
    from provisioner.cache import seed_memo as cache_module

    monkeypatch.setattr(cache_module, "RACY_SECONDS", 0.0)
    profile = seeded(tmp_path)
    with environment(profile):
        pass
    seed = tmp_path / "seed.sql"
    assert cache_module.remembered_seed(seed.resolve()) is not None
    notes: list[str] = []
    with environment(profile, notify=notes.append) as env:
        assert any("from the cache" in n for n in notes)
        assert count_and_password_check(env)[0] == 2000
    before = seed.stat()
    seed.write_text(seed.read_text().replace("2000", "2002"))
    os.utime(seed, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert seed.stat().st_size == before.st_size
    notes.clear()
    with environment(profile, notify=notes.append) as env:
        assert not any("from the cache" in n for n in notes)
        assert count_and_password_check(env)[0] == 2002


def test_cache_off_keeps_nothing(
    tmp_path: Path, cache: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_CACHE", "off")
    with environment(seeded(tmp_path)):
        pass
    rows = json.loads(envctl("cache", "ls", "--json").stdout)
    assert [row for row in rows if str(tmp_path) in row["profile"]] == []


def test_two_builds_of_the_same_entry_at_once_never_tear_it(tmp_path: Path, cache: Any) -> None:
    # Two profiles with identical content (the same key) start at the same moment: both build,
    # one tag wins, and the next start is served a whole entry.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for sub in ("a", "b"):
        (tmp_path / sub / "seed.sql").write_text((tmp_path / "seed.sql").read_text())
    profiles = [seeded(tmp_path / "a", "twin"), seeded(tmp_path / "b", "twin")]
    started: list[Any] = []
    barrier = threading.Barrier(2)

    def start(profile: Any) -> None:
        barrier.wait()
        started.append(up(profile, mode="run"))

    threads = [threading.Thread(target=start, args=(p,)) for p in profiles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    from provisioner.environments import down

    for env in started:
        down(env.env_id)
    assert len(started) == 2
    notes: list[str] = []
    with environment(profiles[0], notify=notes.append) as env:
        assert any("from the cache" in n for n in notes)
        assert count_and_password_check(env)[0] == 2000
    pruned = envctl("cache", "prune")  # removes the untagged loser of the race, keeps the entry
    assert pruned.returncode == 0, pruned.stderr
    rows = json.loads(envctl("cache", "ls", "--json").stdout)
    mine = [row for row in rows if str(tmp_path) in row["profile"]]
    assert [row["tagged"] for row in mine] == [True]


def test_prune_all_empties_the_cache(tmp_path: Path, cache: Any) -> None:
    with environment(seeded(tmp_path)):
        pass
    assert any(
        str(tmp_path) in r["profile"] for r in json.loads(envctl("cache", "ls", "--json").stdout)
    )
    result = envctl("cache", "prune", "--all")
    assert result.returncode == 0, result.stderr
    rows = json.loads(envctl("cache", "ls", "--json").stdout)
    assert [row for row in rows if str(tmp_path) in row["profile"]] == []


@pytest.mark.native
def test_native_starts_come_from_a_copied_data_folder_with_their_own_password(
    tmp_path: Path, native: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_CACHE", "on")
    (tmp_path / "seed.sql").write_text(SEED)
    build_then_start_from_the_cache(seeded(tmp_path, "native-cached"))
    # Without a Docker engine, `cache ls` and `prune` still see the native entries.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    rows = json.loads(envctl("cache", "ls", "--json").stdout)
    native_rows = [row for row in rows if row["runtime"] == "native"]
    assert len(native_rows) == len(rows)
    assert len(native_rows) == 1 and native_rows[0]["size"] > 10_000_000
    assert native_rows[0]["profile"].endswith("native-cached.yaml")
    assert envctl("cache", "prune", "--all").returncode == 0
    assert list((tmp_path / "envctl-cache" / "native").iterdir()) == []
