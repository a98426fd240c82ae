"""Hand-written SQL as people write it: block-comment banners, foreign keys (#21.7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import SeedError
from provisioner.postgres.dumpfile import inspect_dump

CHINOOK_HEAD = """\
/*******************************************************************************
   Chinook Database - Version 1.4
   Script: Chinook_PostgreSql.sql
   Description: Creates and populates the Chinook database.
   DB Server: PostgreSql
********************************************************************************/

/*******************************************************************************
   Create Tables
********************************************************************************/
CREATE TABLE "Artist" ("ArtistId" INT NOT NULL PRIMARY KEY, "Name" VARCHAR(120));
CREATE TABLE "Album"
(
    "AlbumId" INT NOT NULL PRIMARY KEY,
    "ArtistId" INT NOT NULL REFERENCES "Artist"
);
CREATE TABLE "Track" ("TrackId" INT NOT NULL PRIMARY KEY, "AlbumId" INT);
ALTER TABLE "Track" ADD CONSTRAINT "FK_TrackAlbumId"
    FOREIGN KEY ("AlbumId") REFERENCES "Album" ("AlbumId") ON DELETE NO ACTION;
INSERT INTO "Artist" VALUES (1, 'references');
GRANT REFERENCES ON "Album" TO PUBLIC;
"""


def test_sql_with_a_block_comment_banner_is_sql(tmp_path: Path) -> None:
    path = tmp_path / "Chinook_PostgreSql.sql"
    path.write_text(CHINOOK_HEAD)
    info = inspect_dump(path)
    assert info.format == "plain"
    assert info.counts["tables"] == 3


def test_hand_written_foreign_keys_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "northwind.sql"
    path.write_text(CHINOOK_HEAD)
    assert inspect_dump(path).counts["foreign_keys"] == 2


def test_prose_after_a_block_comment_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("/* notes */\nNotes for the team\nSee chapter 2; then 3.\n")
    with pytest.raises(SeedError, match="neither a PostgreSQL backup nor SQL"):
        inspect_dump(path)


def test_hand_written_sql_has_no_completeness_to_check(tmp_path: Path) -> None:
    path = tmp_path / "schema.sql"
    path.write_text("CREATE TABLE t (id int);\n")
    assert inspect_dump(path).complete is None
