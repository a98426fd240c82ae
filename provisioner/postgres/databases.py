"""The databases of a running server: the seeded template, reset, clones, drop.

After seeding, the working database is copied to a template database; `reset` re-creates the
working database from it, and clones (per test, per worker, `envctl db new`) are copies of it,
tagged so that only they are ever listed or dropped as clones.
"""

from __future__ import annotations

from typing import Any

from provisioner.connection import UNLOGGED_SESSION, Connection

MAINTENANCE_DB = "postgres"
CLONE_COMMENT = "envctl clone"  # COMMENT ON DATABASE of every clone: how clones are known


def template_name(database: str) -> str:
    """The template database that keeps `database`'s seeded state."""
    return f"envctl_template_{database}"[:63]


def make_template(connection: Connection) -> None:
    """Keep the working database's current state as its template (replacing an older one)."""
    from psycopg import sql

    template = template_name(connection.database)
    with admin_connection(connection) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template])
        if exists.fetchone():
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(template))
            )
            _drop_database(conn, template)
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(template), sql.Identifier(connection.database)
            )
        )
        # Nobody connects to the template by accident, and any CREATEDB user may clone it.
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(template)
            )
        )


def make_template1(connection: Connection) -> None:
    """Make template1 a copy of the working database's template (`postgres.template1`), so
    that a database created with no TEMPLATE clause starts seeded and migrated.

    A runner that creates a database per test file and migrates it (Medusa's) then finds every
    migration applied and runs none. template1 is an ordinary database flagged as a template:
    Postgres lets it be dropped and made again from another, and any CREATEDB role may copy it.
    """
    from psycopg import sql

    with admin_connection(connection) as conn:
        conn.execute("ALTER DATABASE template1 WITH IS_TEMPLATE false")
        _drop_database(conn, "template1")
        conn.execute(
            sql.SQL("CREATE DATABASE template1 TEMPLATE {}{}").format(
                sql.Identifier(template_name(connection.database)), sql.SQL(_strategy(conn))
            )
        )
        conn.execute("ALTER DATABASE template1 WITH IS_TEMPLATE true")


def reset_database(connection: Connection) -> float:
    """Re-create the working database from its template; return the seconds it took."""
    import time

    from psycopg import sql

    started = time.monotonic()
    with admin_connection(connection) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [template_name(connection.database)]
        ).fetchone()
        template = template_name(connection.database) if row else "template1"
        _drop_database(conn, connection.database)
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}{}").format(
                sql.Identifier(connection.database),
                sql.Identifier(template),
                sql.Identifier(connection.user),
                sql.SQL(_strategy(conn)),
            )
        )
    return time.monotonic() - started


def clone_database(connection: Connection, name: str) -> Connection:
    """A new database `name` from the seeded template; the connection that reaches it."""
    from psycopg import sql

    with admin_connection(connection) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [template_name(connection.database)]
        ).fetchone()
        template = template_name(connection.database) if row else "template1"
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                sql.Identifier(name), sql.Identifier(template), sql.SQL(_strategy(conn))
            )
        )
        # The tag `envctl db list` and `envctl db drop` know clones by: nothing else is theirs.
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(CLONE_COMMENT)
            )
        )
    return connection.with_database(name)


def list_clones(connection: Connection) -> list[tuple[str, int]]:
    """The databases cloned from the template (by their tag), with their sizes in bytes."""
    with admin_connection(connection) as conn:
        rows = conn.execute(
            "SELECT datname, pg_database_size(oid) FROM pg_database"
            " WHERE shobj_description(oid, 'pg_database') = %s ORDER BY datname",
            [CLONE_COMMENT],
        ).fetchall()
    return [(str(name), int(size)) for name, size in rows]


def is_clone(connection: Connection, name: str) -> bool | None:
    """Whether database `name` is a clone envctl made; None when no such database exists."""
    with admin_connection(connection) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    return None if row is None else row[0] == CLONE_COMMENT


def drop_database(connection: Connection, name: str) -> None:
    """Drop database `name`, ending its connections first."""
    with admin_connection(connection) as conn:
        _drop_database(conn, name)


def _strategy(conn: Any) -> str:
    # FILE_COPY (15+) copies files instead of WAL-logging every block: much faster for clones
    # of a test template, and safe here because nothing else writes to the template.
    return " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""


def _drop_database(conn: Any, name: str) -> None:
    from psycopg import sql

    if conn.info.server_version >= 130000:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        return
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
    )
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def admin_connection(
    connection: Connection, database: str = MAINTENANCE_DB, unlogged: bool = False
) -> Any:
    """An autocommit connection as `connection`'s user (to the maintenance database)."""
    import psycopg

    kwargs = connection.with_database(database).psycopg_kwargs(connect_timeout=10)
    if unlogged:
        kwargs["options"] = UNLOGGED_SESSION
    return psycopg.connect(**kwargs, autocommit=True)
