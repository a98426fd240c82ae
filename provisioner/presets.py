"""The presets: which variables each client family reads, as templates of a connection's fields.

A low module of data alone, so that the profile (which checks preset names) and the env file
(which renders them) both read it without importing each other.
"""

from __future__ import annotations

LIBPQ = {
    "PGHOST": "{host}",
    "PGPORT": "{port}",
    "PGUSER": "{user}",
    "PGPASSWORD": "{password}",
    "PGDATABASE": "{database}",
    "PGSSLMODE": "{sslmode}",
    "PGSSLROOTCERT": "{sslrootcert}",
    "PGSSLCERT": "{sslcert}",
    "PGSSLKEY": "{sslkey}",
}
# What each preset writes. Checked against what the clients read (see docs/CLIENTS.md).
PRESETS: dict[str, dict[str, str]] = {
    "url": {"DATABASE_URL": "{url}"},
    "libpq": LIBPQ,
    "medusa": {
        "DB_HOST": "{host}",
        "DB_PORT": "{port}",
        "DB_USERNAME": "{user}",
        "DB_PASSWORD": "{password}",
        "DB_SCHEMA": "public",
        "MEDUSA_DB_SCHEMA": "public",
        "DATABASE_URL": "{url}",
        "PGSSLMODE": "{sslmode}",
        # node-postgres reads no PGSSLROOTCERT; Node itself trusts this extra CA file.
        "NODE_EXTRA_CA_CERTS": "{sslrootcert}",
    },
    # Prisma 7.10: the CLI's schema engine parses DATABASE_URL itself (schema=, sslmode
    # disable|prefer|require, CA in sslcert, sslaccept=strict to verify); Prisma Client 7 hands
    # the same URL to node-postgres through @prisma/adapter-pg. {prisma_url} suits both.
    "prisma": {"DATABASE_URL": "{prisma_url}"},
    # dj-database-url 3.1.2 turns URL query parameters into OPTIONS, which Django 5.2 passes
    # to libpq as they are: a libpq URL is its form. Projects laid out like cookiecutter-django
    # read POSTGRES_* when DATABASE_URL is unset; those pass no sslmode, so libpq takes the
    # PGSSL* variables from the environment.
    "django": {
        "DATABASE_URL": "{url}",
        "POSTGRES_HOST": "{host}",
        "POSTGRES_PORT": "{port}",
        "POSTGRES_USER": "{user}",
        "POSTGRES_PASSWORD": "{password}",
        "POSTGRES_DB": "{database}",
        "PGSSLMODE": "{sslmode}",
        "PGSSLROOTCERT": "{sslrootcert}",
        "PGSSLCERT": "{sslcert}",
        "PGSSLKEY": "{sslkey}",
    },
    # node-postgres 8.23 reads PGHOST..PGDATABASE and PGSSLMODE, but no PGSSLROOTCERT: Node
    # itself trusts the CA through NODE_EXTRA_CA_CERTS (the URL carries it as sslrootcert).
    "node": {
        "DATABASE_URL": "{url}",
        "PGHOST": "{host}",
        "PGPORT": "{port}",
        "PGUSER": "{user}",
        "PGPASSWORD": "{password}",
        "PGDATABASE": "{database}",
        "PGSSLMODE": "{sslmode}",
        "NODE_EXTRA_CA_CERTS": "{sslrootcert}",
    },
    # Active Record 8.1: DATABASE_URL wins over config/database.yml for the current
    # environment; its query parameters that libpq knows go to PG.connect, and whatever the
    # configuration leaves out libpq reads from PG* variables.
    "rails": {"DATABASE_URL": "{url}", **LIBPQ},
    # SQLAlchemy 2.1 with psycopg 3: the URL's query goes to libpq as it is.
    "sqlalchemy": {"DATABASE_URL": "{sqlalchemy_url}"},
    # SQLAlchemy 2.1 with asyncpg 0.32: `ssl=<mode>` in the URL, the certificates from the
    # PGSSL* variables asyncpg reads itself (a certificate path in the URL is a TypeError).
    "sqlalchemy-asyncpg": {
        "DATABASE_URL": "{asyncpg_url}",
        "PGSSLROOTCERT": "{sslrootcert}",
        "PGSSLCERT": "{sslcert}",
        "PGSSLKEY": "{sslkey}",
    },
    # Spring Boot 3's relaxed binding maps SPRING_DATASOURCE_URL/USERNAME/PASSWORD to
    # spring.datasource.*; the URL is pgjdbc's, which takes the CA as sslrootcert.
    "spring": {
        "SPRING_DATASOURCE_URL": "{jdbc_url}",
        "SPRING_DATASOURCE_USERNAME": "{user}",
        "SPRING_DATASOURCE_PASSWORD": "{password}",
    },
    # The same pgjdbc URL under the names Heroku-style buildpacks and many Java apps read.
    "jdbc": {
        "JDBC_DATABASE_URL": "{jdbc_url}",
        "JDBC_DATABASE_USERNAME": "{user}",
        "JDBC_DATABASE_PASSWORD": "{password}",
    },
    # .NET's configuration maps ConnectionStrings__Default to ConnectionStrings:Default,
    # which GetConnectionString("Default") returns: an Npgsql connection string.
    "dotnet": {"ConnectionStrings__Default": "{npgsql}"},
}
