"""Which major `--version nearest` picks, and how the majors here and the hint read."""

from __future__ import annotations

from provisioner.errors import EXIT_ENVIRONMENT_ERROR, MajorUnavailableError
from provisioner.runtime.majors import AvailableMajors

HERE = AvailableMajors(
    docker={15: "postgres:15", 17: "postgres:17", 18: "postgres:18"},
    native={15: "15.14 in /usr/lib/postgresql/15/bin"},
)


def test_nearest_is_the_backups_own_major_when_it_is_here() -> None:
    assert HERE.nearest_newer(15) == 15


def test_nearest_is_the_oldest_newer_major_when_the_backups_is_missing() -> None:
    assert HERE.nearest_newer(16) == 17
    assert HERE.nearest_newer(12) == 15


def test_nearest_is_never_an_older_major() -> None:
    assert AvailableMajors(docker={15: "postgres:15"}).nearest_newer(16) is None


def test_the_majors_here_name_their_image_and_install() -> None:
    assert HERE.describe() == (
        "15 (image postgres:15; native 15.14 in /usr/lib/postgresql/15/bin), "
        "17 (image postgres:17), 18 (image postgres:18)"
    )
    assert AvailableMajors().describe() == "none"


def test_the_hint_names_the_profile_key_unless_a_command_names_its_flag() -> None:
    error = MajorUnavailableError("PostgreSQL 16 cannot run here", "use {setting} nearest")
    assert error.hint == "use postgres.version: nearest"
    error.naming("--version")
    assert error.hint == "use --version nearest"
    assert error.exit_code == EXIT_ENVIRONMENT_ERROR
