"""The checks of `envctl doctor`: Docker, the image, the port, the env file (its variables,
their agreement, the presets' names) and a real connection as each client; passwords masked."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from provisioner.connection import Connection, hide_secrets
from provisioner.doctor.agreement import _FAMILIES, disagreements
from provisioner.doctor.explain import CONNECT_TIMEOUT, _libpq_detail, explain_failure
from provisioner.doctor.target import Target, _target
from provisioner.doctor.urls import _split_url
from provisioner.doctor.views import _VIEW_NEEDS, ClientView, client_views
from provisioner.envfile import render_env
from provisioner.errors import EnvctlError
from provisioner.ports import port_free
from provisioner.presets import PRESETS
from provisioner.runtime.probe import (
    EngineAnswer,
    container_publishing,
    engine_check,
    image_present,
)

if TYPE_CHECKING:
    from provisioner.environments import Environment
    from provisioner.profile import Profile

MASK = "****"
CREATEDB_QUERY = "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, whether it passed, what was seen, and the fix."""

    name: str
    ok: bool
    evidence: str
    fix: str | None = None


def checks_to_json(checks: Iterable[Check]) -> list[dict[str, Any]]:
    """Checks as JSON-friendly dicts (name, ok, evidence, fix)."""
    return [asdict(check) for check in checks]


def parse_env_file(text: str) -> dict[str, str]:
    """Variables of a dotenv file as python-dotenv (what Python apps load) reads them."""
    import io

    from dotenv import dotenv_values

    return {key: value or "" for key, value in dotenv_values(stream=io.StringIO(text)).items()}


# --- the checks ---------------------------------------------------------------------------


def run_doctor(profile: Profile | None, env_file: Path | None) -> list[Check]:
    """Every check for `profile` and its env file (`env_file` overrides the profile's)."""
    from provisioner.environments import find
    from provisioner.runtime.select import wanted_runtime

    running = find(profile) if profile is not None else None
    target = _target(profile, running)
    checks: list[Check] = []
    engine_answers = False
    runtime = wanted_runtime(profile)
    if runtime == "native":
        checks.append(Check("docker", True, "not needed: the runtime is native"))
    else:
        engine = engine_check()
        checks.append(_check_docker(engine, runtime))
        engine_answers = engine.error is None
    if profile is not None and running is not None:
        # It may run another version than the profile's (`up --postgres-version 17`): its
        # server is what the suite reaches, and it is here.
        checks.append(
            Check("image", True, f"not needed: the environment is up ({running.runtime})")
        )
    elif profile is not None and engine_answers:
        checks.append(_check_image(profile))
    if profile is not None:
        checks.append(_check_port(profile, running, engine_answers))
    path = env_file if env_file is not None else (profile.env_file if profile else None)
    checks += _check_env_file(
        path, explicit=env_file is not None, profile=profile, running=running, target=target
    )
    secrets = _secrets(profile, running, path)
    return [_masked(check, secrets) for check in checks]


def _check_docker(engine: EngineAnswer, runtime: str) -> Check:
    others = [f"{seen.address} ({seen.source}): {seen.detail}" for seen in engine.others]
    also = f"; also found: {'; '.join(others)}" if others else ""
    if engine.error is not None:
        if runtime == "auto":
            return Check(
                "docker",
                True,
                f"{engine.error}; runtime auto will use native Postgres binaries instead{also}",
            )
        return Check("docker", False, f"{engine.error}{also}", engine.hint)
    return Check(
        "docker",
        True,
        f"the Docker engine answers at {engine.address} ({engine.source}; {engine.detail};"
        f" chosen because {engine.reason}){also}",
    )


def _check_image(profile: Profile) -> Check:
    try:
        image = profile.postgres.resolved_image()
    except EnvctlError as exc:
        return Check("image", True, f"decided at start: {exc.message}")
    present = image_present(image)
    if isinstance(present, str):
        return Check("image", False, f"cannot look up image {image}: {present}")
    if not present:
        return Check(
            "image",
            False,
            f"image {image} is not present locally (envctl would try to pull it)",
            f"`docker pull {image}`, or point ENVCTL_POSTGRES_IMAGE at a registry you can "
            "reach (e.g. mirror.example/postgres:{major}), or set postgres.image",
        )
    return Check("image", True, f"image {image} is present")


def _check_port(profile: Profile, running: Environment | None, engine_answers: bool) -> Check:
    pg = profile.postgres
    if pg.port == "auto":
        if running is not None:
            return Check("port", True, f"port auto: the running environment has {running.port}")
        return Check("port", True, "postgres.port is auto: a free port is picked at start")
    port, host = pg.port, pg.host
    if running is not None and running.port == port:
        return Check("port", True, f"port {port} is held by this profile's running environment")
    holder = container_publishing(port) if engine_answers else None
    if holder is None and port_free(host, port):
        return Check("port", True, f"port {port} on {host} is free")
    who = f"container '{holder}'" if holder else "another process"
    stop = f"stop it (`docker stop {holder}`)" if holder else "stop it"
    return Check(
        "port",
        False,
        f"port {port} on {host} is in use by {who}",
        f"{stop}, choose another postgres.port, or use `port: auto`",
    )


def _check_env_file(
    path: Path | None,
    *,
    explicit: bool,
    profile: Profile | None,
    running: Environment | None,
    target: Target,
) -> list[Check]:
    if path is None:
        return [Check("env file", True, "the profile writes no env file: nothing to check")]
    try:
        text = read_env_text(path)
    except FileNotFoundError:
        if running is None and not explicit:
            return [
                Check(
                    "env file",
                    True,
                    f"{path} is not there: `envctl up` or `envctl run` writes it",
                )
            ]
        return [
            Check(
                "env file",
                False,
                f"{path} does not exist",
                f"start the environment (`envctl up {target.profile_ref}`), which writes it"
                if running is None
                else f"`envctl down {target.profile_ref}` and `envctl up {target.profile_ref}` "
                "write it again",
            )
        ]
    except OSError as exc:
        return [Check("env file", False, f"{path} cannot be read ({exc})")]
    values = parse_env_file(text)
    checks = [Check("env file", True, f"{path}: {_count(len(values), 'variable')}")]
    checks.append(_check_agreement(values))
    if profile is not None:
        checks.append(_check_presence(values, profile, running, target, path))
    elif (implied := _check_implied_presence(values, path)) is not None:
        checks.append(implied)
    presets = list(profile.env.preset) if profile is not None else None
    for view in client_views(values, presets):
        checks.append(_check_connection(view, target))
    if running is not None:
        checks.append(_check_drift(values, running, target, path))
    return checks


def _check_agreement(values: Mapping[str, str]) -> Check:
    problems = disagreements(values)
    if problems:
        return Check(
            "variables agree",
            False,
            "the variables name different settings: " + "; ".join(problems),
            "make them agree (envctl writes them all from one connection: `envctl up` "
            "rewrites the file), or remove the stale ones",
        )
    families = [f for f, names in _FAMILIES.items() if any(v in values for v in names.values())]
    if "DATABASE_URL" in values:
        families.insert(0, "DATABASE_URL")
    compared = ", ".join(families) or "no connection variables"
    return Check("variables agree", True, f"{compared}: no contradictions")


# What a client does when a preset's variable is missing (docs/CLIENTS.md).
_FALLBACKS: dict[str, dict[str, str]] = {
    "medusa": {
        "DB_HOST": "Medusa's runner will use localhost",
        "DB_PORT": "Medusa's runner will use 5432",
        "DB_USERNAME": "Medusa's runner will use the user postgres",
        "DB_PASSWORD": "Medusa's runner will send an empty password",
        "DATABASE_URL": "the app's medusa-config usually reads it (Medusa's runner does not)",
        "PGSSLMODE": "node-postgres will connect without SSL",
        "NODE_EXTRA_CA_CERTS": "Node will check the server against its own CA store only, "
        "which lacks envctl's CA",
        "MEDUSA_DB_SCHEMA": "Medusa's runner reads its schema from it",
        "DB_SCHEMA": "nothing in Medusa's runner reads it (apps may)",
    },
    "libpq": {
        "PGHOST": "libpq will use its local Unix socket",
        "PGPORT": "libpq will use 5432",
        "PGUSER": "libpq will use your operating-system user name",
        "PGPASSWORD": "libpq will send no password (or one from ~/.pgpass)",
        "PGDATABASE": "libpq will use a database named like the user",
        "PGSSLMODE": "libpq will use sslmode=prefer (SSL if offered, unverified)",
        "PGSSLROOTCERT": "libpq will look for ~/.postgresql/root.crt",
        "PGSSLCERT": "libpq will look for ~/.postgresql/postgresql.crt",
        "PGSSLKEY": "libpq will look for ~/.postgresql/postgresql.key",
    },
    # node-postgres 8.23's defaults (pg/lib/defaults.js), see docs/CLIENTS.md.
    "node": {
        "DATABASE_URL": "clients that read it have no database to connect to",
        "PGHOST": "node-postgres will use localhost",
        "PGPORT": "node-postgres will use 5432",
        "PGUSER": "node-postgres will use your operating-system user name",
        "PGPASSWORD": "node-postgres will send no password",
        "PGDATABASE": "node-postgres will use a database named like the user",
        "PGSSLMODE": "node-postgres will connect without SSL",
        "NODE_EXTRA_CA_CERTS": "Node will check the server against its own CA store only, "
        "which lacks envctl's CA",
    },
    "url": {"DATABASE_URL": "clients that read it have no database to connect to"},
    "prisma": {
        "DATABASE_URL": "Prisma stops: prisma.config.ts's env('DATABASE_URL') throws "
        "'Cannot resolve environment variable: DATABASE_URL.'"
    },
    "django": {
        "DATABASE_URL": "dj-database-url's config() returns {} (and logs a warning); "
        "cookiecutter-django's settings fall back to POSTGRES_*",
        "POSTGRES_HOST": "cookiecutter-django's settings will use the host postgres",
        "POSTGRES_PORT": "cookiecutter-django's settings will use 5432",
        "POSTGRES_USER": "cookiecutter-django's settings fail to load (no default)",
        "POSTGRES_PASSWORD": "cookiecutter-django's settings fail to load (no default)",
        "POSTGRES_DB": "cookiecutter-django's settings fail to load (no default)",
    },
    "rails": {"DATABASE_URL": "Rails will use config/database.yml alone"},
}
_FACT_OF = {
    "DB_HOST": "host",
    "PGHOST": "host",
    "POSTGRES_HOST": "host",
    "DB_PORT": "port",
    "PGPORT": "port",
    "POSTGRES_PORT": "port",
    "DB_USERNAME": "user",
    "PGUSER": "user",
    "POSTGRES_USER": "user",
    "PGDATABASE": "database",
    "POSTGRES_DB": "database",
    "PGSSLMODE": "sslmode",
}
_SAID_AS = {
    "host": "the database listens on {}",
    "port": "the database listens on {}",
    "user": "the database's user is {}",
    "database": "the database is {}",
    "sslmode": "the server's SSL mode is {}",
}


def _fallback(preset: str, variable: str) -> str:
    table = _FALLBACKS.get(preset, {})
    if variable in table:
        return table[variable]
    if variable in _FALLBACKS["libpq"]:
        return _FALLBACKS["libpq"][variable]
    return "nothing sets it"


def expected_variables(profile: Profile, running: Environment | None) -> dict[str, str]:
    """Variable name -> the preset that writes it ("vars" for the profile's own)."""
    if running is not None:
        names: Iterable[str] = running.variables
    else:
        # Certificate variables exist only with SSL (and client ones with client_cert).
        ssl = profile.postgres.ssl
        fake = Path("ca.crt")
        conn = Connection(
            host="h",
            port=1,
            user="u",
            password="p",
            database="d",
            sslmode=ssl.mode,
            sslrootcert=None if ssl.mode == "disable" else fake,
            sslcert=fake if ssl.client_cert else None,
            sslkey=fake if ssl.client_cert else None,
        )
        names = render_env(conn, profile.env.preset, profile.env.vars, profile.postgres.roles)
    owners: dict[str, str] = {}
    for name in names:
        if name in profile.env.vars:
            owners[name] = "vars"
            continue
        owners[name] = next((p for p in profile.env.preset if name in PRESETS[p]), "vars")
    return owners


def _check_implied_presence(values: Mapping[str, str], path: Path) -> Check | None:
    """Without a profile: Medusa's DB_* set always comes with the DATABASE_URL its app reads."""
    if not any(values.get(v) for v in _VIEW_NEEDS["medusa"]) or values.get("DATABASE_URL"):
        return None
    return Check(
        "variables present",
        False,
        f"DATABASE_URL is missing: {_fallback('medusa', 'DATABASE_URL')} (the file has DB_*)",
        f"add the DATABASE_URL `envctl env PROFILE --show-password` prints to {path}, or "
        "`envctl down` and `envctl up` to rewrite it",
    )


def _check_presence(
    values: Mapping[str, str],
    profile: Profile,
    running: Environment | None,
    target: Target,
    path: Path,
) -> Check:
    expected = expected_variables(profile, running)
    missing = [name for name in expected if not values.get(name)]
    if not missing:
        presets = ", ".join(profile.env.preset)
        count = _count(len(expected), "variable")
        return Check("variables present", True, f"all {count} of the presets {presets}")
    lines = []
    fixes = []
    for name in missing:
        owner = expected[name]
        if owner == "vars":
            lines.append(f"{name} is missing (the profile's env.vars sets it)")
        else:
            line = f"{name} is missing: {_fallback(owner, name)}"
            fact = _FACT_OF.get(name)
            actual = getattr(target, fact) if fact else None
            if fact and actual is not None:
                line += f", {_SAID_AS[fact].format(actual)}"
            lines.append(line)
        if running is not None and name in running.variables:
            fixes.append(f"{name}={running.variables[name]}")
    if fixes:
        fix = f"add {', '.join(fixes)} to {path}, or `envctl down` and `envctl up` to rewrite it"
    else:
        fix = f"`envctl up {target.profile_ref}` writes every variable of the profile's presets"
    return Check("variables present", False, "; ".join(lines), fix)


def _check_connection(view: ClientView, target: Target) -> Check:
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"connect: {view.label}"
    if view.problem:
        return Check(
            name,
            False,
            f"DATABASE_URL cannot be parsed: {view.problem}",
            "write it as postgresql://user:password@host:port/database?sslmode=...",
        )
    params = {k: v for k, v in view.params.items() if v != "" or k == "password"}
    where = f"{params.get('host', 'the local socket')}:{params.get('port', '5432')}"
    try:
        conninfo = make_conninfo("", connect_timeout=CONNECT_TIMEOUT, **params)
        with psycopg.connect(conninfo) as conn:
            ssl = "SSL" if conn.pgconn.ssl_in_use else "no SSL"
            version = conn.info.server_version
            can_create = conn.execute(CREATEDB_QUERY).fetchone()
    except psycopg.Error as exc:
        cause, fix = explain_failure(str(exc), view, target)
        return Check(name, False, f"{cause} (libpq: {_libpq_detail(str(exc))})", fix)
    evidence = (
        f"connected to {where} as {params.get('user', '?')}, database "
        f"{params.get('dbname', '?')}, {ssl} (sslmode {params.get('sslmode', 'prefer')}), "
        f"server {version // 10000}"
    )
    evidence += "".join(f"; {note}" for note in view.notes)
    if view.needs_createdb and not (can_create and can_create[0]):
        return Check(
            name,
            False,
            f"{evidence}, but {params.get('user')} may not create databases, which the test "
            "runner does",
            "connect as a superuser (postgres.user) or a role with CREATEDB (postgres.roles)",
        )
    return Check(name, True, evidence)


def _check_drift(
    values: Mapping[str, str], running: Environment, target: Target, path: Path
) -> Check:
    drifted = []
    for name, expected in running.variables.items():
        actual = values.get(name)
        if actual == expected:
            continue
        said = "missing" if actual is None else f"{actual!r}, environment {expected!r}"
        drifted.append(f"{name} ({'file ' + said if actual is not None else said})")
    if not drifted:
        return Check(
            "matches environment", True, f"{path} holds the running environment's variables"
        )
    return Check(
        "matches environment",
        False,
        f"{path} differs from the running environment: {', '.join(drifted)}",
        f"`envctl env {target.profile_ref} --show-password` prints the right values; "
        f"`envctl down {target.profile_ref}` then `envctl up` writes them again",
    )


# --- secrets ------------------------------------------------------------------------------


def read_env_text(path: Path) -> str:
    """An env file's text; a byte that is not UTF-8 (envctl keeps those when it merges) reads
    as U+FFFD, so that it can still be checked and printed."""
    return path.read_bytes().decode("utf-8", errors="replace")


def _secrets(profile: Profile | None, running: Environment | None, path: Path | None) -> set[str]:
    found: set[str] = set()
    if running is not None:
        found.add(running.password)
    if profile is not None and profile.postgres.password:
        found.add(profile.postgres.password)
    if path is not None:
        with contextlib.suppress(OSError):
            values = parse_env_file(read_env_text(path))
            for name, value in values.items():
                if "PASSWORD" in name:
                    found.add(value)
                if "://" in value:
                    found.add(_split_url(value).get("password", ""))
    found |= {quote(secret, safe="") for secret in found}
    return {secret for secret in found if len(secret) >= 3}


def _masked(check: Check, secrets: set[str]) -> Check:
    def hide(text: str | None) -> str | None:
        return None if text is None else hide_secrets(text, secrets, MASK)

    return Check(check.name, check.ok, hide(check.evidence) or "", hide(check.fix))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
