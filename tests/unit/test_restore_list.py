"""Which entries of an old dump's table of contents are left out of a restore, and which stay."""

from __future__ import annotations

from provisioner.postgres.seed import without_entries_already_there

# `pg_restore --list` of a PG 9.5 custom dump (dvdrental), shortened.
OLD_DUMP_LISTING = """\
;
; Archive created at 2019-05-12 10:00:00 UTC
;     dbname: dvdrental
;     Dumped from database version: 9.5.17
;
; Selected TOC Entries:
;
3; 2615 2200 SCHEMA - public postgres
2354; 0 0 COMMENT - SCHEMA public postgres
1; 3079 12355 EXTENSION - plpgsql
2356; 0 0 COMMENT - EXTENSION plpgsql
588; 1247 16394 DOMAIN public year postgres
181; 1259 16396 TABLE public actor postgres
2347; 0 16396 TABLE DATA public actor postgres
2355; 0 0 ACL - SCHEMA public postgres
"""


def test_public_schema_and_plpgsql_comment_are_left_out() -> None:
    kept, skipped = without_entries_already_there(OLD_DUMP_LISTING)
    assert skipped == [
        "CREATE SCHEMA public",
        "COMMENT ON SCHEMA public",
        "COMMENT ON EXTENSION plpgsql",
    ]
    assert ";3; 2615 2200 SCHEMA - public postgres\n" in kept
    assert ";2354; 0 0 COMMENT - SCHEMA public postgres\n" in kept
    assert ";2356; 0 0 COMMENT - EXTENSION plpgsql\n" in kept


def test_every_other_entry_stays_as_it_was() -> None:
    kept, _ = without_entries_already_there(OLD_DUMP_LISTING)
    active = [line for line in kept.splitlines() if line and not line.startswith(";")]
    assert active == [
        "1; 3079 12355 EXTENSION - plpgsql",  # CREATE EXTENSION IF NOT EXISTS: harmless, kept
        "588; 1247 16394 DOMAIN public year postgres",
        "181; 1259 16396 TABLE public actor postgres",
        "2347; 0 16396 TABLE DATA public actor postgres",
        "2355; 0 0 ACL - SCHEMA public postgres",
    ]


def test_a_schema_named_like_public_is_not_public() -> None:
    listing = "5; 2615 16387 SCHEMA - public_archive app\n6; 0 0 COMMENT - SCHEMA publicity app\n"
    kept, skipped = without_entries_already_there(listing)
    assert (kept, skipped) == (listing, [])


def test_a_listing_without_those_entries_is_unchanged() -> None:
    listing = "181; 1259 16396 TABLE public actor postgres\n"
    assert without_entries_already_there(listing) == (listing, [])
