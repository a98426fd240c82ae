from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from provisioner.connection import Connection
from provisioner.errors import UsageError
from provisioner.suite.workers import check_count, worker_names, write_files


def test_worker_names_follow_the_database_and_stay_within_63_bytes() -> None:
    assert worker_names("shop", 3) == ["shop_w1", "shop_w2", "shop_w3"]
    long = worker_names("é" * 40, 12)
    assert all(len(name.encode()) <= 63 for name in long)
    assert long[0].endswith("_w1") and long[-1].endswith("_w12") and len(set(long)) == 12


@pytest.mark.parametrize("count", [0, -1, 65])
def test_a_worker_count_outside_1_to_64_is_refused(count: int) -> None:
    with pytest.raises(UsageError, match=f"--workers {count}: give 1 to 64 workers"):
        check_count(count)


def test_the_workers_file_is_private_and_maps_each_id_to_its_database(tmp_path: Path) -> None:
    server = Connection("127.0.0.1", 5432, "postgres", "secret", "shop")
    suite = write_files(
        tmp_path / "w", ["shop_w1", "shop_w2"], server, lambda c: {"PGDATABASE": c.database}
    )
    path = Path(suite["ENVCTL_WORKERS_FILE"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "1": {"PGDATABASE": "shop_w1"},
        "2": {"PGDATABASE": "shop_w2"},
    }
    assert suite["ENVCTL_WORKERS"] == "2"
    assert "JEST_WORKER_ID" in Path(suite["ENVCTL_WORKER_SETUP"]).read_text()
    assert "import { readFileSync }" in Path(suite["ENVCTL_WORKER_SETUP_ESM"]).read_text()


def test_reprs_of_connections_and_clones_hold_no_password() -> None:
    # pytest prints a failed test's fixtures (envctl_db, envctl_env) in its traceback.
    from provisioner.api import ClonedDatabase

    connection = Connection("127.0.0.1", 5432, "postgres", "pw-in-repr", "shop")
    clone = ClonedDatabase("t_1", connection.url, {"PGPASSWORD": "pw-in-repr"})
    assert "pw-in-repr" not in repr(connection) + repr(clone)
    assert "t_1" in repr(clone) and "5432" in repr(connection)
