"""The spring, jdbc and dotnet presets: the strings pgjdbc and Npgsql parse, and the doctor's
views of them agreeing with the connection they were rendered from, by the parsing rules
(docs/CLIENTS.md). pgjdbc itself connects in tests/integration/test_jdbc_preset.py; no .NET
runtime is installable here, so Npgsql's string is checked by its rules only."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.connection import Connection, npgsql_quote
from provisioner.doctor import client_views, jdbc_view, npgsql_view, parse_npgsql
from provisioner.envfile import render_env

CA = Path("/tmp/env ctl/ca.crt")
PLAIN = Connection("127.0.0.1", 55432, "app", "p@ss;w'rd", "db one")
VERIFIED = Connection("localhost", 5433, "app", "s3cret", "app", "verify-full", CA)


def test_spring_preset_writes_url_username_and_password() -> None:
    env = render_env(PLAIN, ["spring"], {})
    assert env == {
        "SPRING_DATASOURCE_URL": "jdbc:postgresql://127.0.0.1:55432/db%20one?sslmode=disable",
        "SPRING_DATASOURCE_USERNAME": "app",
        "SPRING_DATASOURCE_PASSWORD": "p@ss;w'rd",
    }


def test_jdbc_url_carries_the_ca_as_sslrootcert_percent_encoded() -> None:
    url = render_env(VERIFIED, ["jdbc"], {})["JDBC_DATABASE_URL"]
    assert url == (
        "jdbc:postgresql://localhost:5433/app?sslmode=verify-full&sslrootcert=/tmp/env%20ctl/ca.crt"
    )
    # pgjdbc URL-decodes query values like java.net.URLDecoder: no "+" may stand for a space.
    assert "+" not in url
    query = parse_qs(urlsplit(url.removeprefix("jdbc:")).query)
    assert query["sslrootcert"] == [str(CA)]


def test_jdbc_url_brackets_ipv6_hosts() -> None:
    conn = Connection("::1", 5432, "u", "p", "d")
    assert conn.jdbc_url.startswith("jdbc:postgresql://[::1]:5432/d?")


@pytest.mark.parametrize(
    ("sslmode", "npgsql"),
    [
        ("disable", "Disable"),
        ("allow", "Allow"),
        ("prefer", "Prefer"),
        ("require", "Require"),
        ("verify-ca", "VerifyCA"),
        ("verify-full", "VerifyFull"),
    ],
)
def test_npgsql_ssl_modes_are_its_enum_names(sslmode: str, npgsql: str) -> None:
    conn = Connection("h", 1, "u", "p", "d", sslmode)
    assert conn.npgsql.endswith(f";SSL Mode={npgsql}")


def test_dotnet_preset_writes_one_connection_string() -> None:
    env = render_env(VERIFIED, ["dotnet"], {})
    assert env == {
        "ConnectionStrings__Default": "Host=localhost;Port=5433;Database=app;Username=app;"
        'Password=s3cret;SSL Mode=VerifyFull;Root Certificate="/tmp/env ctl/ca.crt"'
    }


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "plain"),
        ("a;b", '"a;b"'),
        ("it's", '"it\'s"'),
        ('say "hi"', "'say \"hi\"'"),
        ("both ' and \"", '"both \' and """'),
        (" padded ", '" padded "'),
        ("a=b", '"a=b"'),
        ("=", '"="'),
        ("tab\there", '"tab\there"'),
    ],
)
def test_npgsql_values_are_quoted_as_dbconnectionstringbuilder_writes_them(
    value: str, written: str
) -> None:
    assert npgsql_quote(value) == written


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_any_password_reads_back_from_the_npgsql_string(password: str) -> None:
    conn = Connection("localhost", 5432, "app", password, "db;name")
    pairs = parse_npgsql(conn.npgsql)
    # DbConnectionStringBuilder trims unquoted values; quoting keeps outer blanks.
    assert pairs["password"] == password
    assert pairs["database"] == "db;name"
    assert pairs["sslmode"] == "Disable"


@pytest.mark.parametrize("conn", [PLAIN, VERIFIED], ids=["plain", "verified"])
@pytest.mark.parametrize("preset", ["spring", "jdbc", "dotnet"])
def test_the_doctor_reads_each_preset_as_the_connection_it_came_from(
    conn: Connection, preset: str
) -> None:
    (view,) = client_views(render_env(conn, [preset], {}), [preset])
    assert view.problem is None
    expected = {
        "host": conn.host,
        "port": str(conn.port),
        "dbname": conn.database,
        "user": conn.user,
        "password": conn.password,
        "sslmode": conn.sslmode,
    }
    if conn.sslrootcert is not None:
        expected["sslrootcert"] = str(conn.sslrootcert)
    assert view.params == expected


def test_doctor_views_name_a_string_they_cannot_read() -> None:
    assert jdbc_view({"SPRING_DATASOURCE_URL": "postgresql://h/d"}).problem
    assert npgsql_view({"ConnectionStrings__Default": "Host=h;Password='open"}).problem


def test_without_a_profile_the_doctor_recognises_the_variables() -> None:
    env = {**render_env(PLAIN, ["spring"], {}), **render_env(PLAIN, ["dotnet"], {})}
    assert [view.kind for view in client_views(env, None)] == ["jdbc", "npgsql"]
