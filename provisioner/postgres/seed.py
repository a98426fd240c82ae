"""Seed data and backups: restored with the server's own psql/pg_restore, then kept as a template.

Restores run next to the server (inside its container, or with the native install's tools), so
the client tools always match the server and the host needs none. The template made after
seeding, reset and clones live in provisioner.postgres.databases.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner import signals
from provisioner.connection import UNLOGGED_SESSION, Connection
from provisioner.errors import SeedError, first_line
from provisioner.postgres.databases import MAINTENANCE_DB, admin_connection, template_name
from provisioner.postgres.dumpfile import (
    DumpInfo,
    newer_than_error,
    open_dump,
    rewrite_tool_error,
    truncated_error,
)
from provisioner.profile import PostgresConfig, SeedItem, SeedOptions
from provisioner.runtime import ExecResult, Runtime

log = logging.getLogger(__name__)
Notify = Callable[[str], None]
_PSQL_ERROR = re.compile(r"^psql:(?P<file>[^:]+):(?P<line>\d+): (?P<message>.*)$", re.M)
_OWNER_TO = re.compile(r"\bOWNER\s+TO\s+(\"(?:[^\"]|\"\")+\"|[A-Za-z_][\w$]*)", re.I)
# TOC entries every new database already has, which pg_dump before 11 (and pg_dump of a
# re-created or named `public` schema) writes: restored, they fail with "already exists".
_ALREADY_THERE = re.compile(
    r"^\d+; \d+ \d+ (?P<what>SCHEMA - public|COMMENT - SCHEMA public|COMMENT - EXTENSION plpgsql)"
    r"(?: \S+)?\s*$",
    re.M,
)
_AS_SQL = {
    "SCHEMA - public": "CREATE SCHEMA public",
    "COMMENT - SCHEMA public": "COMMENT ON SCHEMA public",
    "COMMENT - EXTENSION plpgsql": "COMMENT ON EXTENSION plpgsql",
}
# A GRANT may span lines (hand-written SQL often breaks it before ON and TO).
_GRANT_TO = re.compile(
    r"^\s*GRANT\b[^;]*?\bTO\s+([^;]+?)(?:\s+WITH\s+\w+\s+OPTION)?(?:\s+GRANTED\s+BY\s+[^;]+)?\s*;",
    re.I | re.M,
)
_CREATE_ROLE = re.compile(
    r"\bCREATE\s+(?:ROLE|USER|GROUP)\s+(\"(?:[^\"]|\"\")+\"|[A-Za-z_][\w$]*)", re.I
)
# What pg_restore's --no-owner --no-acl leave out, for plain SQL: statements that give an
# object to a role or grant on it, on one line (as pg_dump writes them) or on several.
_OWNERSHIP = re.compile(
    r"\s*(?:ALTER\s[^;]*\bOWNER\s+TO\s[^;]*|ALTER\s+DEFAULT\s+PRIVILEGES\s[^;]*|"
    r"(?:GRANT|REVOKE)\s[^;]*);\s*(?:--[^\n]*)?\s*",
    re.I,
)
_OWNERSHIP_START = re.compile(r"^\s*(?:ALTER|GRANT|REVOKE)\s", re.I)
_STATEMENT_END = re.compile(r";\s*(?:--[^\n]*)?$")
_MAX_STATEMENT_LINES = 200  # a longer "statement" is not one of these: copy it as it is
_DOLLAR_QUOTE = re.compile(r"\$(?:[A-Za-z_]\w*)?\$")
_COPY_LINE = re.compile(r"^COPY\s.*\bFROM\s+stdin;\s*$", re.I)


@dataclass(frozen=True)
class SeedFile:
    """A seed file after unwrapping, with what its header says."""

    item: SeedItem
    source: Path  # as the user named it
    readable: Path  # unwrapped (gunzipped, untarred) where needed
    info: DumpInfo


def inspect_seeds(pg: PostgresConfig, folder: Path, workdir: Path) -> list[SeedFile | SeedItem]:
    """Read every seed file's header up front: bad files fail before anything starts."""
    seeds: list[SeedFile | SeedItem] = []
    for item in pg.seed:
        if item.path is None:
            seeds.append(item)
            continue
        source = (folder / item.path).resolve()
        readable, info = open_dump(source, workdir)
        if info.complete is False:
            raise truncated_error(info)
        seeds.append(SeedFile(item=item, source=source, readable=readable, info=info))
    return seeds


def backup_major(seeds: Iterable[SeedFile | SeedItem]) -> int | None:
    """The newest server major any backup was dumped from (for `version: auto`)."""
    # required_major: a 15 server dumped by pg_dump 17 needs 17's pg_restore (archive 1.16).
    majors = [
        s.info.required_major for s in seeds if isinstance(s, SeedFile) and s.info.required_major
    ]
    return max(majors) if majors else None


def check_versions(seeds: Iterable[SeedFile | SeedItem], major: int) -> None:
    """Refuse a backup made by a newer major than the server's: pg_restore would fail later."""
    for seed in seeds:
        needed = seed.info.required_major if isinstance(seed, SeedFile) else None
        if isinstance(seed, SeedFile) and needed and needed > major:
            raise newer_than_error(seed.info, major)


def apply_seed(
    runtime: Runtime,
    env_id: str,
    connection: Connection,
    pg: PostgresConfig,
    seeds: list[SeedFile | SeedItem],
    notify: Notify,
) -> str:
    """Roles, schemas, extensions, then every seed in order; the database the data landed in
    (see `landed_database`; the profile's if it names one). The caller makes the template for
    reset once the migrations, if any, have run too."""
    before = _databases(connection)
    check_extensions(connection, seeds)
    try:
        if pg.roles or pg.extensions or pg.schemas:
            _prepare(connection, pg)
        for seed in seeds:
            if isinstance(seed, SeedFile):
                notify(f"restoring {seed.source.name} ({seed.info.format})")
                _restore_file(runtime, env_id, connection, pg, seed, notify)
            else:
                notify("running inline SQL")
                _run_inline(runtime, env_id, connection, seed)
    except SeedError:
        # Ctrl-C in a terminal reaches a native psql too, which cancels its statement: the
        # seed did not fail, the user stopped it.
        signals.current().checkpoint()
        raise
    if "database" in pg.model_fields_set:
        return connection.database
    return landed_database(connection, before, notify)


# Images that ship extensions the official postgres image lacks, for the hint.
_EXTENSION_IMAGES = {
    "vector": "pgvector/pgvector:pg{major}",
    "postgis": "postgis/postgis:{major}-3.5",
    "postgis_topology": "postgis/postgis:{major}-3.5",
    "postgis_raster": "postgis/postgis:{major}-3.5",
    "timescaledb": "timescale/timescaledb:latest-pg{major}",
    "age": "apache/age",
    "pg_cron": "an image built with pg_cron",
}


def check_extensions(connection: Connection, seeds: Iterable[SeedFile | SeedItem]) -> None:
    """Refuse, before any restore, the backups that create an extension this server does
    not have: the restore would stop there, after minutes of work."""
    wanted = {
        name: seed for seed in seeds if isinstance(seed, SeedFile) for name in seed.info.extensions
    }
    if not wanted:
        return
    with admin_connection(connection) as conn:
        have = {row[0] for row in conn.execute("SELECT name FROM pg_available_extensions")}
        major = conn.info.server_version // 10000
    missing = sorted(name for name in wanted if name not in have)
    if not missing:
        return
    first = wanted[missing[0]]
    images = [
        f"{name}: {_EXTENSION_IMAGES[name].format(major=major)}"
        for name in missing
        if name in _EXTENSION_IMAGES
    ]
    where = f" ({'; '.join(images)})" if images else ""
    hint = f"run it where the extension is installed: postgres.image naming an image with it{where}"
    natives = _natives_with(missing)
    if natives:
        hint += f"; or runtime: native, with PostgreSQL {natives}"
    raise SeedError(
        f"{first.source} creates extension {', '.join(missing)}, which this PostgreSQL "
        f"{major} server does not have (its pg_available_extensions)",
        hint=hint,
    )


def _natives_with(extensions: list[str]) -> str:
    """The native installs found here that have every one of `extensions`, described."""
    from provisioner.runtime.binaries import installs_with_extension

    found: dict[Path, str] | None = None
    for name in extensions:
        have = {i.bin_dir: i.describe() for i in installs_with_extension(name)}
        found = have if found is None else {k: v for k, v in found.items() if k in have}
    return ", ".join((found or {}).values())


PROGRESS_EVERY = 5.0  # seconds: a restore shorter than this prints no progress line
LIVE_EVERY = 1.0  # seconds between updates of a terminal's spinner (nothing piles up there)


@contextlib.contextmanager
def restore_progress(
    connection: Connection, name: str, notify: Notify, every: float = PROGRESS_EVERY
) -> Iterator[None]:
    """While the block runs, the time so far and the table being loaded with its rows so far
    (pg_stat_progress_copy, PostgreSQL 14+): a live spinner on a terminal, updated every
    second, else one plain line every `every` seconds."""
    import threading
    import time

    from provisioner.progress import progress

    done = threading.Event()
    started = time.monotonic()
    with progress(f"restoring {name}", notify, plain_first=False) as shown:
        interval = LIVE_EVERY if shown.live else every

        def report() -> None:
            while not done.wait(interval):
                line = f"restoring {name}: {time.monotonic() - started:.0f} s"
                try:
                    line += _copy_in_progress(connection)
                except Exception as exc:  # progress is a courtesy: the restore reports errors
                    log.debug("no restore progress: %s", exc)
                if not done.is_set():
                    shown.show(line)

        reporter = threading.Thread(target=report, name="envctl-restore-progress", daemon=True)
        reporter.start()
        try:
            yield
        finally:
            done.set()
            reporter.join(timeout=interval + 10)


def _copy_in_progress(connection: Connection) -> str:
    with admin_connection(connection) as conn:
        if conn.info.server_version < 140000:
            return ""
        rows = conn.execute(
            "SELECT d.datname, p.relid, p.tuples_processed "
            "FROM pg_stat_progress_copy p JOIN pg_database d ON d.oid = p.datid "
            "WHERE p.command = 'COPY FROM' ORDER BY p.pid"
        ).fetchall()
    loading = []
    for database, relid, count in rows:
        # A table's name is only known inside its own database.
        with admin_connection(connection, database) as conn:
            found = conn.execute("SELECT %s::oid::regclass::text", [relid]).fetchone()
        loading.append(f"{found[0] if found else relid} ({count:,} rows so far)")
    return f", loading {', '.join(loading)}" if loading else ""


def _databases(connection: Connection) -> set[str]:
    with admin_connection(connection) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def landed_database(connection: Connection, before: set[str], notify: Notify) -> str:
    """The database the seeds' data is in: the working one, unless it is empty and the seeds
    made databases of their own (pg_dumpall, `pg_dump --create`, `CREATE DATABASE x; \\c x`);
    then the largest of those."""
    made = sorted(_databases(connection) - before)
    if not made or _has_relations(connection):
        return connection.database
    with admin_connection(connection) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s) AND datallowconn "
            "ORDER BY pg_database_size(datname) DESC, datname",
            [made],
        ).fetchall()
    if not rows:
        return connection.database
    chosen = str(rows[0][0])
    if len(rows) > 1:
        names = ", ".join(str(row[0]) for row in rows)
        notify(f"the seeds made databases {names}: {chosen}, the largest, is the one used")
    return chosen


def _has_relations(connection: Connection) -> bool:
    with admin_connection(connection, connection.database) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_toast%' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "LIMIT 1"
        ).fetchone()
    return row is not None


def seeded_database(connection: Connection) -> str:
    """The database whose seeded state a template keeps: the working one if it has a
    template, else the one database that has one (the data landed there; also on a cache
    hit, where no seed runs)."""
    with admin_connection(connection) as conn:
        names = {str(row[0]) for row in conn.execute("SELECT datname FROM pg_database")}
    if template_name(connection.database) in names:
        return connection.database
    kept = [
        name
        for name in sorted(names)
        if template_name(name) in names and name[:16] != "envctl_template_"
    ]
    return kept[0] if len(kept) == 1 else connection.database


def _prepare(connection: Connection, pg: PostgresConfig) -> None:
    import psycopg
    from psycopg import sql

    with admin_connection(connection, unlogged=True) as conn:  # role passwords stay out of the log
        for role in pg.roles:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role.name])
            verb = "ALTER" if exists.fetchone() else "CREATE"
            options = [
                "LOGIN" if role.login else "NOLOGIN",
                "SUPERUSER" if role.superuser else "NOSUPERUSER",
                "CREATEDB" if role.createdb else "NOCREATEDB",
            ]
            statement = sql.SQL("{} ROLE {} WITH {}").format(
                sql.SQL(verb), sql.Identifier(role.name), sql.SQL(" ".join(options))
            )
            if role.password is not None:
                statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(role.password))
            conn.execute(statement)
    with admin_connection(connection, connection.database) as conn:
        try:
            for schema in pg.schemas:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
            for extension in pg.extensions:
                conn.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension))
                )
        except psycopg.Error as exc:
            raise SeedError(
                f"postgres.extensions/schemas: {first_line(exc)}",
                hint="extensions must be installed in the image (those shipped with Postgres are)",
            ) from None


def _run_inline(runtime: Runtime, env_id: str, connection: Connection, item: SeedItem) -> None:
    assert item.sql is not None
    with tempfile.TemporaryDirectory(prefix="envctl-sql-") as folder:
        path = Path(folder) / "inline.sql"
        path.write_text(item.sql + "\n")
        inside = runtime.copy_in(env_id, path)
        result = runtime.exec(env_id, _psql(connection.user, connection.database, inside))
    if result.exit_code != 0:
        raise SeedError(
            f"postgres.seed inline sql failed: {_psql_failure(result.output, 'inline sql')}",
            hint="fix the statement in the profile",
        )


def _restore_file(
    runtime: Runtime,
    env_id: str,
    connection: Connection,
    pg: PostgresConfig,
    seed: SeedFile,
    notify: Notify,
) -> None:
    options = _options(pg.seed_options, seed.item)
    info = seed.info
    if options.owners == "drop" and info.format == "plain":
        with tempfile.TemporaryDirectory(prefix="envctl-owners-") as folder:
            unowned = Path(folder) / seed.readable.name
            without_ownership(seed.readable, unowned)
            inside = runtime.copy_in(env_id, unowned)
    else:
        inside = runtime.copy_in(env_id, seed.readable)
    if options.owners == "create" and info.format in ("plain", "custom", "tar", "directory"):
        _create_missing_roles(runtime, env_id, connection, seed, inside)
    if info.format in ("plain", "globals", "cluster"):
        if info.format == "cluster":
            log.warning(
                "%s is a full pg_dumpall: it creates databases and may change role passwords; "
                "envctl keeps its own login working",
                seed.source,
            )
        database = MAINTENANCE_DB if info.format != "plain" else connection.database
        whole_cluster = info.format != "plain"
        # pg_dumpall re-creates every role, the bootstrap superuser included: as its docs say,
        # "already exists" errors are expected there; any other error still stops the seed.
        argv = _psql(connection.user, database, inside, stop_on_error=not whole_cluster)
        with restore_progress(connection, seed.source.name, notify):
            result = runtime.exec(env_id, argv)
        if whole_cluster:
            _keep_login(connection, runtime, env_id)
            result = ExecResult(_unexpected_errors(result.output), result.output)
        if result.exit_code != 0:
            failure = _psql_failure(
                result.output, str(seed.source), inside, expected_ok=whole_cluster
            )
            raise SeedError(
                f"{seed.source}: {failure}",
                hint="the restore stops at the first error; fix the file or the roles it needs",
            )
        return
    argv = ["pg_restore", "--no-password", "--exit-on-error", "-U", connection.user]
    argv += ["-d", connection.database]
    if options.owners == "drop":
        argv += ["--no-owner", "--no-acl"]
    if options.jobs and options.jobs > 1:
        argv += ["--jobs", str(options.jobs)]
    if options.schema_only:
        argv.append("--schema-only")
    if options.data_only:
        argv += ["--data-only", "--disable-triggers"]
    argv += _skip_what_is_there(runtime, env_id, seed, inside, notify)
    argv.append(inside)
    with restore_progress(connection, seed.source.name, notify):
        result = runtime.exec(env_id, argv)
    if result.exit_code != 0:
        friendly = rewrite_tool_error(result.output, info)
        raise SeedError(
            f"{seed.source}: {friendly or _tail(result.output)}",
            hint="use owners: drop when the backup's roles do not matter"
            if "role" in result.output and "does not exist" in result.output
            else "pg_restore stopped at the first error shown above",
        )


def _skip_what_is_there(
    runtime: Runtime, env_id: str, seed: SeedFile, inside: str, notify: Notify
) -> list[str]:
    """`-L LIST` leaving out the archive's entries every new database already has (see
    `without_entries_already_there`), or nothing when it has none of them."""
    listing = runtime.exec(env_id, ["pg_restore", "--list", inside])
    if listing.exit_code != 0:
        return []  # the restore itself reports why the archive cannot be read
    kept, skipped = without_entries_already_there(listing.output)
    if not skipped:
        return []
    notify(
        f"skipping {', '.join(skipped)} of {seed.source.name}: every new database has them "
        "(old pg_dump releases wrote them)"
    )
    with tempfile.TemporaryDirectory(prefix="envctl-list-") as folder:
        path = Path(folder) / "restore.list"
        path.write_text(kept)
        return ["--use-list", runtime.copy_in(env_id, path)]


def without_entries_already_there(listing: str) -> tuple[str, list[str]]:
    """A `pg_restore --list` with the entries for `public` and plpgsql's comment commented
    out, which old dumps create and a new database has (restoring them fails with "schema
    public already exists"); and what was left out. Every other entry, and error, stays."""
    skipped = [match["what"] for match in _ALREADY_THERE.finditer(listing)]
    kept = _ALREADY_THERE.sub(lambda match: ";" + match[0], listing)
    return kept, [_AS_SQL[what] for what in skipped]


def _options(defaults: SeedOptions, item: SeedItem) -> SeedOptions:
    merged: dict[str, Any] = {"owners": "create"}
    for source in (defaults, item):
        for key in SeedOptions.model_fields:
            value = getattr(source, key)
            if value is not None:
                merged[key] = value
    return SeedOptions(**merged)


def _create_missing_roles(
    runtime: Runtime, env_id: str, connection: Connection, seed: SeedFile, inside: str
) -> None:
    if seed.info.format == "plain":
        text = seed.readable.read_text(encoding="utf-8", errors="replace")
    else:
        listing = runtime.exec(
            env_id, ["pg_restore", "--schema-only", "--file=-", inside], {"PGUSER": connection.user}
        )
        text = listing.output
    roles = referenced_roles(text) - created_roles(text)
    if not roles:
        return
    from psycopg import sql

    with admin_connection(connection) as conn:
        existing = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}
        for role in sorted(roles - existing - {"PUBLIC", "public"}):
            log.info("creating role %s referenced by %s", role, seed.source)
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))


def referenced_roles(text: str) -> set[str]:
    """Roles a dump's SQL gives objects to (OWNER TO) or grants to (GRANT ... TO)."""
    roles = {_unquote(match) for match in _OWNER_TO.findall(text)}
    for grantees in _GRANT_TO.findall(text):
        for grantee in grantees.split(","):
            name = grantee.strip()
            if name and not name.upper().startswith("GROUP "):
                roles.add(_unquote(name))
    return {role for role in roles if role}


def created_roles(text: str) -> set[str]:
    """Roles the SQL creates itself (CREATE ROLE/USER/GROUP): pre-creating them would make
    its own CREATE ROLE fail with "already exists"."""
    return {_unquote(name) for name in _CREATE_ROLE.findall(text)}


def without_ownership(source: Path, target: Path) -> None:
    """Copy plain SQL with its OWNER TO, GRANT, REVOKE and ALTER DEFAULT PRIVILEGES statements
    commented out, also those written over several lines; line numbers stay those of the
    user's file. COPY data and function bodies (dollar-quoted) are copied untouched."""
    in_copy = False
    quote: str | None = None  # the dollar quote a function body is open with
    pending: list[str] = []  # the lines of a statement that may be an ownership one

    with (
        source.open(encoding="utf-8", errors="surrogateescape", newline="") as reader,
        target.open("w", encoding="utf-8", errors="surrogateescape", newline="") as writer,
    ):

        def flush(owned: bool) -> None:
            writer.writelines(("-- owners: drop -- " + line) if owned else line for line in pending)
            pending.clear()

        for line in reader:
            if pending:
                pending.append(line)
                if _STATEMENT_END.search(line.rstrip("\r\n")):
                    flush(bool(_OWNERSHIP.fullmatch("".join(pending))))
                elif len(pending) >= _MAX_STATEMENT_LINES:
                    flush(False)
                continue
            if in_copy:
                in_copy = line.rstrip("\r\n") != "\\."
            elif quote is None and _COPY_LINE.match(line):
                in_copy = True
            elif quote is None and _OWNERSHIP_START.match(line):
                pending.append(line)
                if _STATEMENT_END.search(line.rstrip("\r\n")):
                    flush(bool(_OWNERSHIP.fullmatch(line)))
                continue
            else:
                quote = _dollar_quote_after(line, quote)
            writer.write(line)
        flush(False)


def _dollar_quote_after(line: str, quote: str | None) -> str | None:
    """The dollar quote open at the end of `line`, given the one open at its start."""
    for match in _DOLLAR_QUOTE.finditer(line):
        if quote is None:
            quote = match[0]
        elif match[0] == quote:
            quote = None
    return quote


def _unquote(name: str) -> str:
    name = name.strip()
    if name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def _keep_login(connection: Connection, runtime: Runtime, env_id: str) -> None:
    # A full cluster dump may have changed our role's password: put ours back over the socket.
    from psycopg import sql

    statement = sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
        sql.Identifier(connection.user), sql.Literal(connection.password)
    )
    with tempfile.TemporaryDirectory(prefix="envctl-sql-") as folder:
        path = Path(folder) / "login.sql"
        path.write_text(statement.as_string(None) + ";\n")
        inside = runtime.copy_in(env_id, path)
        argv = _psql(connection.user, MAINTENANCE_DB, inside)
        runtime.exec(env_id, argv, {"PGOPTIONS": UNLOGGED_SESSION})


def _psql(user: str, database: str, path: str, stop_on_error: bool = True) -> list[str]:
    stop = ["-v", "ON_ERROR_STOP=1"] if stop_on_error else []
    return ["psql", "-X", "-q", *stop, "-U", user, "-d", database, "-f", path]


_EXPECTED_IN_CLUSTER_DUMP = re.compile(r'ERROR:\s+(role|database) "[^"]+" already exists')


def _unexpected_errors(output: str) -> int:
    """1 if psql reported an error other than the ones a pg_dumpall restore always has."""
    for match in _PSQL_ERROR.finditer(output):
        if "ERROR" in match.group("message") and not _EXPECTED_IN_CLUSTER_DUMP.search(
            match.group(0)
        ):
            return 1
    return 0


def _psql_failure(
    output: str, shown_name: str, inside: str | None = None, expected_ok: bool = False
) -> str:
    """`line N: message (statement)` of psql's first error, with the user's file name in
    place of the copy psql read. `expected_ok`: skip the errors a pg_dumpall restore has."""
    match = next(
        (
            m
            for m in _PSQL_ERROR.finditer(output)
            if not (expected_ok and _EXPECTED_IN_CLUSTER_DUMP.search(m[0]))
        ),
        None,
    )
    if not match:
        tail = _tail(output)
        return tail.replace(inside, shown_name) if inside else tail
    message = match.group("message").strip()
    rest = output[match.end() :].strip().splitlines()
    statement = " | ".join(line.strip() for line in rest[:3] if line.strip())
    where = f"line {match.group('line')}"
    text = f"{where}: {message}"
    if statement:
        text += f" ({statement})"
    if inside:
        text = text.replace(inside, shown_name)
    return text


def _tail(output: str, lines: int = 8) -> str:
    kept = [line for line in output.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(no output)"
