"""`envctl doctor` logic on synthetic env files: parsing, agreement, missing names, wording."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.connection import Connection
from provisioner.doctor import (
    Check,
    Target,
    checks_to_json,
    client_views,
    describe_presets,
    disagreements,
    explain_failure,
    libpq_url_view,
    medusa_view,
    node_url_view,
    parse_env_file,
    prisma_view,
    run_doctor,
)
from provisioner.doctor.checks import _masked
from provisioner.envfile import format_env, render_env
from provisioner.presets import PRESETS
from provisioner.profile import load_profile
from tests.conftest import write_profile

CA = Path("/tmp/envctl certs/ca.crt")
PLAIN = Connection(host="127.0.0.1", port=55432, user="app", password="s3cret-pw", database="db")
VERIFIED = Connection(
    host="127.0.0.1",
    port=55432,
    user="app",
    password="s3cret-pw",
    database="db",
    sslmode="verify-full",
    sslrootcert=CA,
)


@pytest.mark.parametrize(
    "value",
    ["plain", "p@ss w#rd", 'quo"te', "back\\slash", "two\nlines", "'single'", "", "a=b&c"],
)
def test_env_files_envctl_writes_read_back_unchanged(value: str) -> None:
    text = format_env({"A": value, "B": "after"}, "dotenv")
    assert parse_env_file(text) == {"A": value, "B": "after"}


def test_variables_that_name_different_ports_are_reported() -> None:
    values = render_env(PLAIN, ["url", "medusa"], {}) | {"DB_PORT": "5432"}
    assert disagreements(values) == ["port: DATABASE_URL 55432, DB_PORT 5432"]


def test_a_password_disagreement_names_the_variables_but_not_the_values() -> None:
    values = render_env(PLAIN, ["url", "libpq"], {}) | {"PGPASSWORD": "other-secret"}
    problems = disagreements(values)
    assert problems == ["password: DATABASE_URL, PGPASSWORD differ"]
    assert "s3cret" not in problems[0] and "other-secret" not in problems[0]


def test_every_preset_renders_variables_that_agree() -> None:
    for connection in (PLAIN, VERIFIED):
        for preset in PRESETS:
            assert disagreements(render_env(connection, [preset], {})) == [], preset


def test_prismas_sslmode_dialect_agrees_with_libpqs_verify_modes() -> None:
    values = render_env(VERIFIED, ["prisma"], {}) | {"PGSSLMODE": "verify-full"}
    assert disagreements(values) == []
    values["PGSSLMODE"] = "disable"
    assert disagreements(values) == ["sslmode: DATABASE_URL verify, PGSSLMODE disable"]


def test_prisma_preset_writes_prismas_own_url_dialect() -> None:
    url = render_env(VERIFIED, ["prisma"], {})["DATABASE_URL"]
    assert url.startswith("postgresql://app:s3cret-pw@127.0.0.1:55432/db?schema=public&")
    # Prisma knows disable|prefer|require; verification is sslaccept=strict with the CA in sslcert.
    assert "sslmode=require" in url and "sslaccept=strict" in url
    assert "sslcert=/tmp/envctl%20certs/ca.crt" in url
    # node-postgres (Prisma Client 7's adapter) reads the CA from sslrootcert.
    assert "sslrootcert=/tmp/envctl%20certs/ca.crt" in url
    plain = render_env(PLAIN, ["prisma"], {})["DATABASE_URL"]
    assert plain.endswith("/db?schema=public&sslmode=disable")


def test_require_is_unverified_in_the_prisma_url() -> None:
    conn = Connection("127.0.0.1", 5432, "u", "p", "d", sslmode="require", sslrootcert=CA)
    url = conn.prisma_url
    assert "sslmode=require" in url and "sslaccept" not in url and "sslcert=" not in url


def test_django_and_rails_presets_write_libpq_urls_and_their_variables() -> None:
    from psycopg.conninfo import conninfo_to_dict

    django = render_env(VERIFIED, ["django"], {})
    assert conninfo_to_dict(django["DATABASE_URL"])["sslrootcert"] == str(CA)
    assert django["POSTGRES_PORT"] == "55432" and django["POSTGRES_DB"] == "db"
    assert django["PGSSLMODE"] == "verify-full"  # the POSTGRES_* path passes no sslmode
    rails = render_env(VERIFIED, ["rails"], {})
    assert {"DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGSSLROOTCERT"} <= set(rails)
    assert "POSTGRES_HOST" not in rails


def test_profiles_may_use_prisma_url_in_their_own_templates(tmp_path: Path) -> None:
    profile = load_profile(
        write_profile(tmp_path, "name: p\nenv:\n  vars:\n    PRISMA_URL: '{prisma_url}'\n")
    )
    assert render_env(PLAIN, [], profile.env.vars)["PRISMA_URL"] == PLAIN.prisma_url


def test_medusas_runner_falls_back_to_its_defaults() -> None:
    view = medusa_view({"DB_HOST": "127.0.0.1"})
    assert view.params["port"] == "5432"
    assert view.origin["port"] == "DB_PORT (missing)"
    assert view.params["user"] == "postgres" and view.params["dbname"] == "postgres"
    assert view.params["sslmode"] == "disable"  # no PGSSLMODE: node-postgres uses no SSL


def test_node_postgres_verifies_for_require_and_uses_node_extra_ca_certs() -> None:
    view = medusa_view({"DB_HOST": "h", "PGSSLMODE": "require", "NODE_EXTRA_CA_CERTS": "/ca"})
    assert view.params["sslmode"] == "verify-full"
    assert view.params["sslrootcert"] == "/ca"
    without = node_url_view({"DATABASE_URL": "postgresql://u:p@h:1/d?sslmode=require"})
    assert without.params["sslrootcert"] == "system"  # Node's own CA store
    compat = node_url_view(
        {"DATABASE_URL": "postgresql://u:p@h:1/d?sslmode=require&uselibpqcompat=true"}
    )
    assert compat.params["sslmode"] == "require"


def test_prisma_reads_libpqs_verify_modes_as_prefer() -> None:
    view = prisma_view({"DATABASE_URL": "postgresql://u:p@h:1/d?sslmode=verify-full"})
    assert view.params["sslmode"] == "prefer"
    assert view.notes == ("Prisma reads sslmode=verify-full as prefer",)


def test_a_url_fills_in_from_pg_variables_as_libpq_does() -> None:
    view = libpq_url_view({"DATABASE_URL": "postgresql://u@h/d", "PGPORT": "6000"})
    assert view.params["port"] == "6000" and view.origin["port"] == "PGPORT"
    assert view.params["host"] == "h" and view.origin["host"] == "DATABASE_URL"


def test_a_url_libpq_cannot_parse_is_a_problem_not_a_crash() -> None:
    view = libpq_url_view({"DATABASE_URL": "postgresql://u@h/d?schema=public"})
    assert view.problem is not None and "schema" in view.problem


def test_without_a_profile_the_file_names_decide_which_clients_to_try() -> None:
    values = render_env(PLAIN, ["prisma"], {}) | {"DB_HOST": "h", "DB_PORT": "1"}
    assert [view.kind for view in client_views(values, None)] == ["prisma-url", "medusa"]


def test_missing_db_port_names_the_runners_default_and_the_real_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_RUNTIME", "native")
    profile = load_profile(
        write_profile(
            tmp_path,
            "name: m\npostgres:\n  port: 55432\nenv:\n  preset: [medusa]\n",
        )
    )
    variables = render_env(PLAIN, ["medusa"], {})
    del variables["DB_PORT"]
    (tmp_path / ".env.test").write_text(format_env(variables, "dotenv"))
    checks = {check.name: check for check in run_doctor(profile, None)}
    present = checks["variables present"]
    assert not present.ok
    assert present.evidence == (
        "DB_PORT is missing: Medusa's runner will use 5432, the database listens on 55432"
    )


@pytest.mark.parametrize(
    ("message", "cause", "fix"),
    [
        (
            'connection to server at "127.0.0.1", port 5432 failed: Connection refused',
            "nothing listens on 127.0.0.1:5432 (DB_PORT is missing, so 5432)",
            "the database listens on 55432: set DB_PORT=55432",
        ),
        (
            "connection to server at ... failed: server does not support SSL, but SSL was required",
            "the client requires SSL (node-postgres uses verified SSL for every sslmode but "
            "disable and no-verify) but the server has SSL off (the profile has ssl: disable)",
            "set PGSSLMODE=disable, or turn SSL on in the profile (`ssl: require`)",
        ),
        (
            'FATAL:  pg_hba.conf rejects connection for host "172.17.0.1", user "postgres", '
            'database "test", no encryption',
            "the server runs but is not ready yet: envctl turns clients away until it has set "
            "the environment's password",
            "wait until `envctl up` reports the database ready; if it failed, its error shows "
            "the server's log",
        ),
        (
            'FATAL:  password authentication failed for user "postgres"',
            "the server rejects the password for user postgres (from DB_PASSWORD)",
            "use the environment's password: `envctl env m.yaml --show-password` prints it; "
            "`envctl up` writes it into the file",
        ),
    ],
)
def test_connection_failures_become_a_cause_and_a_fix(message: str, cause: str, fix: str) -> None:
    view = medusa_view(
        {
            "DB_HOST": "127.0.0.1",
            "DB_PASSWORD": "x",
            "PGSSLMODE": "require",
            "NODE_EXTRA_CA_CERTS": "/c",
        }
    )
    target = Target(port=55432, sslmode="disable", profile_ref="m.yaml", running=True)
    assert explain_failure(message, view, target) == (cause, fix)


# One message of each kind libpq reports, in the order the explanations are tried.
EXPLAINED = [
    (
        "server does not support SSL, but SSL was required",
        "the client requires SSL (sslmode verify-full from DATABASE_URL) but the server has "
        "SSL off",
        "set sslmode=disable in DATABASE_URL, or turn SSL on in the profile (`ssl: require`)",
    ),
    (
        'FATAL:  no pg_hba.conf entry for host "172.17.0.1", user "u", database "shop", no '
        "encryption",
        "the server accepts only SSL connections (the profile has ssl: verify-full) and this "
        "client connects without SSL (DATABASE_URL says verify-full)",
        "set sslmode=verify-full in DATABASE_URL",
    ),
    (
        'FATAL:  pg_hba.conf rejects connection for host "172.17.0.1"',
        "the server runs but is not ready yet: envctl turns clients away until it has set the "
        "environment's password",
        "wait until `envctl up` reports the database ready; if it failed, its error shows the "
        "server's log",
    ),
    (
        "Connection refused",
        "nothing listens on db.example:6543 (from DATABASE_URL)",
        "the database listens on 55432: set the port in DATABASE_URL to 55432",
    ),
    (
        'connection to server on socket "/tmp/.s.PGSQL.5432" failed: No such file or directory',
        "no host is set, so libpq tried its local Unix socket, where nothing listens",
        "set the host in DATABASE_URL to 127.0.0.1",
    ),
    (
        'FATAL:  password authentication failed for user "u"',
        "the server rejects the password for user u (from DATABASE_URL)",
        "use the environment's password: `envctl env p.yaml --show-password` prints it; "
        "`envctl up` writes it into the file",
    ),
    (
        'FATAL:  database "shop" does not exist',
        "the server has no database shop",
        "set the database in DATABASE_URL to db",
    ),
    (
        'FATAL:  role "u" does not exist',
        "the server has no user u",
        "set the user name in DATABASE_URL to app",
    ),
    (
        'server certificate for "localhost" does not match host name "db.example"',
        "the server's certificate names localhost, 127.0.0.1, ::1 (and the container's names), "
        "not db.example, and sslmode verify-full checks the name",
        "connect to one of those names (set the host in DATABASE_URL to 127.0.0.1), or use "
        "sslmode verify-ca, which checks the CA but not the name",
    ),
    (
        "SSL error: certificate verify failed",
        "the server's certificate is not signed by a CA this client trusts "
        "(~/.postgresql/root.crt)",
        "set PGSSLROOTCERT=/ca",
    ),
    (
        'root certificate file "/root/.postgresql/root.crt" does not exist',
        "sslmode verify-full verifies the server but no CA file is given",
        "set PGSSLROOTCERT=/ca",
    ),
    (
        'could not translate host name "db.example" to address: Name or service not known',
        "the host name db.example does not resolve",
        "set the host in DATABASE_URL to 127.0.0.1",
    ),
    (
        "timeout expired",
        "nothing answered on db.example:6543 within 5s",
        "start it: `envctl up p.yaml`",
    ),
    (
        'could not open certificate file "/x.crt": Permission denied',
        "a certificate or key file the client names cannot be read",
        "point the sslrootcert/sslcert/sslkey settings (PGSSL* or the URL) at the files of the "
        "running environment; `envctl env p.yaml` lists them",
    ),
    (
        'could not load private key file "/x.key"',
        "a certificate or key file the client names cannot be read",
        "point the sslrootcert/sslcert/sslkey settings (PGSSL* or the URL) at the files of the "
        "running environment; `envctl env p.yaml` lists them",
    ),
    (
        'could not read root certificate file "/ca"',
        "a certificate or key file the client names cannot be read",
        "point the sslrootcert/sslcert/sslkey settings (PGSSL* or the URL) at the files of the "
        "running environment; `envctl env p.yaml` lists them",
    ),
    (
        "SSL error: tlsv13 alert certificate required",
        "the server wants a client certificate this client does not send",
        "set PGSSLCERT and PGSSLKEY (or sslcert and sslkey in the URL) to the files envctl "
        "wrote, or turn client_cert off in the profile",
    ),
    ("FATAL:  sorry, too many clients already", "the connection failed", "see the server's log"),
]


EXPLAINED_VIEW = libpq_url_view(
    {"DATABASE_URL": "postgresql://u:p@db.example:6543/shop?sslmode=verify-full"}
)
EXPLAINED_TARGET = Target(
    host="127.0.0.1",
    port=55432,
    user="app",
    database="db",
    sslmode="verify-full",
    sslrootcert="/ca",
    running=True,
    profile_ref="p.yaml",
)


@pytest.mark.parametrize(("message", "cause", "fix"), EXPLAINED)
def test_each_kind_of_libpq_error_has_its_own_cause_and_fix(
    message: str, cause: str, fix: str
) -> None:
    assert explain_failure(message, EXPLAINED_VIEW, EXPLAINED_TARGET) == (cause, fix)


@pytest.mark.parametrize("first", range(len(EXPLAINED)))
def test_a_message_of_several_kinds_is_explained_as_the_earliest_kind(first: int) -> None:
    message = " / ".join(message for message, _, _ in EXPLAINED[first:])
    _, cause, fix = EXPLAINED[first]
    assert explain_failure(message, EXPLAINED_VIEW, EXPLAINED_TARGET) == (cause, fix)


def test_passwords_never_appear_in_checks() -> None:
    check = Check("x", False, "postgresql://u:s3cret%2Fpw@h/d and s3cret/pw", "use s3cret/pw")
    masked = _masked(check, {"s3cret/pw", "s3cret%2Fpw"})
    assert "s3cret" not in masked.evidence + (masked.fix or "")
    assert masked.evidence == "postgresql://u:****@h/d and ****"


def test_checks_and_presets_have_plain_data_forms() -> None:
    assert checks_to_json([Check("a", True, "e")]) == [
        {"name": "a", "ok": True, "evidence": "e", "fix": None}
    ]
    presets = describe_presets()
    assert presets["medusa"]["DB_PORT"] == "{port}"
    assert presets["prisma"] == {"DATABASE_URL": "{prisma_url}"}


def test_an_env_file_named_on_the_command_line_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_RUNTIME", "native")
    checks = run_doctor(None, tmp_path / "missing.env")
    assert [(c.name, c.ok) for c in checks] == [("docker", True), ("env file", False)]
    assert checks[-1].evidence == f"{tmp_path / 'missing.env'} does not exist"


def test_the_profiles_env_file_may_be_absent_while_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVCTL_RUNTIME", "native")
    profile = load_profile(write_profile(tmp_path, "name: q\n"))
    checks = run_doctor(profile, None)
    assert all(check.ok for check in checks), checks
    assert "is not there: `envctl up` or `envctl run` writes it" in checks[-1].evidence


def test_two_presets_writing_one_variable_are_read_by_the_later_ones_clients() -> None:
    url = "postgresql://u:p@127.0.0.1:5432/test?schema=public&sslmode=disable"
    values = {"DATABASE_URL": url}
    assert [view.kind for view in client_views(values, ["url", "prisma"])] == ["prisma-url"]
    plain = {"DATABASE_URL": "postgresql://u:p@127.0.0.1:5432/test?sslmode=disable"}
    assert [view.kind for view in client_views(plain, ["prisma", "url"])] == ["libpq-url"]
    both = {**plain, "DB_HOST": "127.0.0.1", "DB_PORT": "5432", "DB_USERNAME": "u"}
    both["DB_PASSWORD"] = "p"
    assert [view.kind for view in client_views(both, ["medusa", "prisma"])] == [
        "medusa",
        "prisma-url",
    ]


def test_presets_writing_one_variable_alike_keep_every_client() -> None:
    # medusa writes PGSSLMODE as libpq does; spring and jdbc share one view.
    values = {
        "DATABASE_URL": "postgresql://u:p@127.0.0.1:5432/test?sslmode=disable",
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "PGUSER": "u",
        "PGPASSWORD": "p",
        "PGDATABASE": "test",
        "PGSSLMODE": "disable",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": "5432",
        "DB_USERNAME": "u",
        "DB_PASSWORD": "p",
        "SPRING_DATASOURCE_URL": "jdbc:postgresql://127.0.0.1:5432/test?sslmode=disable",
    }
    kinds = [view.kind for view in client_views(values, ["url", "libpq", "medusa"])]
    assert kinds == ["libpq-url", "libpq-env", "medusa", "node-url"]
    assert [view.kind for view in client_views(values, ["spring", "jdbc"])] == ["jdbc"]
