"""owners: drop for plain SQL: which statements are left out, on one line or several, and what
must stay untouched (COPY data, function bodies, other ALTERs)."""

from pathlib import Path

from provisioner.postgres.seed import created_roles, referenced_roles, without_ownership

DUMPED = """\
CREATE TABLE public.t (id int);
ALTER TABLE public.t OWNER TO ghost;
GRANT SELECT ON TABLE public.t TO ghost;
REVOKE ALL ON TABLE public.t FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE ghost GRANT SELECT ON TABLES TO ghost;
"""

HAND_WRITTEN = """\
CREATE TABLE t (id int);
GRANT SELECT, INSERT
    ON ALL TABLES IN SCHEMA public
    TO app_reader, "App Writer";
ALTER TABLE t
    OWNER TO app_owner; -- the app owns it
ALTER TABLE t
    ADD COLUMN name text;
COPY t (id) FROM stdin;
GRANT this is data;
\\.
CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $body$
BEGIN
GRANT SELECT ON t TO inside_a_body;
END
$body$;
SELECT 1;
"""


def _dropped(tmp_path: Path, text: str) -> list[str]:
    source, target = tmp_path / "in.sql", tmp_path / "out.sql"
    source.write_text(text)
    without_ownership(source, target)
    out = target.read_text().splitlines()
    assert len(out) == len(text.splitlines()), "line numbers must stay the user's"
    mark = "-- owners: drop -- "
    return [line.removeprefix(mark) for line in out if line.startswith(mark)]


def test_one_line_statements_as_pg_dump_writes_them(tmp_path: Path) -> None:
    assert _dropped(tmp_path, DUMPED) == DUMPED.splitlines()[1:]


def test_statements_over_several_lines_are_dropped_whole(tmp_path: Path) -> None:
    dropped = _dropped(tmp_path, HAND_WRITTEN)
    assert dropped == [
        "GRANT SELECT, INSERT",
        "    ON ALL TABLES IN SCHEMA public",
        '    TO app_reader, "App Writer";',
        "ALTER TABLE t",
        "    OWNER TO app_owner; -- the app owns it",
    ]


def test_copy_data_function_bodies_and_other_alters_stay(tmp_path: Path) -> None:
    source, target = tmp_path / "in.sql", tmp_path / "out.sql"
    source.write_text(HAND_WRITTEN)
    without_ownership(source, target)
    out = target.read_text()
    for kept in (
        "ALTER TABLE t\n    ADD COLUMN name text;\n",
        "\nGRANT this is data;\n",
        "\nGRANT SELECT ON t TO inside_a_body;\n",
        "\nSELECT 1;\n",
    ):
        assert kept in out


def test_an_unterminated_statement_is_copied_as_it_is(tmp_path: Path) -> None:
    text = "GRANT SELECT ON t\n" + "-- no end\n" * 300
    assert _dropped(tmp_path, text) == []


def test_roles_referenced_over_several_lines(tmp_path: Path) -> None:
    assert referenced_roles(HAND_WRITTEN) >= {"app_reader", "App Writer", "app_owner"}
    assert referenced_roles("GRANT r1\n  TO u1\n  GRANTED BY admin;\n") == {"u1"}
    assert created_roles('CREATE ROLE app_owner NOLOGIN;\ncreate user "Mixed";') == {
        "app_owner",
        "Mixed",
    }
