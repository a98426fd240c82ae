"""A failed connection explained: libpq's error as its cause and the fix, in terms of the
file's variables and what the database really is."""

from __future__ import annotations

import re

from provisioner.doctor.target import Target
from provisioner.doctor.views import ClientView
from provisioner.errors import first_line

CONNECT_TIMEOUT = 5  # doctor's connections give up after it; an explanation names it


def _source(view: ClientView, keyword: str) -> tuple[str, bool]:
    """The variable behind a keyword, and whether it was missing (a default was used)."""
    origin = view.origin.get(keyword, "")
    missing = origin.endswith(" (missing)")
    variable = origin.removesuffix(" (missing)").split(" ")[0] or "DATABASE_URL"
    return variable, missing


def _set(view: ClientView, keyword: str, value: object) -> str:
    variable, _ = _source(view, keyword)
    if variable == "DATABASE_URL":
        part = {"dbname": "database", "user": "user name"}.get(keyword, keyword)
        if keyword in ("sslmode", "sslrootcert"):
            return f"set {keyword}={value} in DATABASE_URL"
        return f"set the {part} in DATABASE_URL to {value}"
    return f"set {variable}={value}"


def explain_failure(message: str, view: ClientView, target: Target) -> tuple[str, str]:
    """A connection error as (cause, fix), in terms of the file's variables."""
    params = view.params
    host, port = params.get("host", "the local socket"), params.get("port", "5432")
    mode = params.get("sslmode", "prefer")
    mode_var, mode_missing = _source(view, "sslmode")
    up = f"start it: `envctl up {target.profile_ref}`"
    low = message.lower()
    if "server does not support ssl" in low:
        node = view.kind in ("medusa", "node-url")
        how = (
            "node-postgres uses verified SSL for every sslmode but disable and no-verify"
            if node
            else f"sslmode {mode} from {mode_var}"
        )
        server = " (the profile has ssl: disable)" if target.sslmode == "disable" else ""
        return (
            f"the client requires SSL ({how}) but the server has SSL off{server}",
            f"{_set(view, 'sslmode', 'disable')}, or turn SSL on in the profile (`ssl: require`)",
        )
    if "no pg_hba.conf entry" in low and "no encryption" in low:
        wanted = target.sslmode if target.sslmode and target.sslmode != "disable" else "require"
        origin = f"{mode_var} is missing" if mode_missing else f"{mode_var} says {mode}"
        return (
            f"the server accepts only SSL connections (the profile has ssl: {wanted}) and this "
            f"client connects without SSL ({origin})",
            _set(view, "sslmode", wanted),
        )
    if "pg_hba.conf rejects connection" in low:
        # envctl's own rule: its boot script turns TCP clients away until the password is set.
        return (
            "the server runs but is not ready yet: envctl turns clients away until it has set "
            "the environment's password",
            "wait until `envctl up` reports the database ready; if it failed, its error shows "
            "the server's log",
        )
    if "connection refused" in low:
        port_var, port_missing = _source(view, "port")
        said = f"{port_var} is missing, so {port}" if port_missing else f"from {port_var}"
        cause = f"nothing listens on {host}:{port} ({said})"
        if target.port is not None and str(target.port) != port:
            return (
                cause,
                f"the database listens on {target.port}: {_set(view, 'port', target.port)}",
            )
        if target.host is not None and target.host != host and target.running:
            return (
                cause,
                f"the database listens on {target.host}: {_set(view, 'host', target.host)}",
            )
        return cause, up if not target.running else "check the environment: `envctl status`"
    if "no such file or directory" in low:
        fix = _set(view, "host", target.host) if target.host else f"set {_source(view, 'host')[0]}"
        return "no host is set, so libpq tried its local Unix socket, where nothing listens", fix
    if "password authentication failed" in low:
        user = params.get("user", "?")
        variable, missing = _source(view, "password")
        said = f"{variable} is missing" if missing else f"from {variable}"
        return (
            f"the server rejects the password for user {user} ({said})",
            f"use the environment's password: `envctl env {target.profile_ref} --show-password` "
            "prints it; `envctl up` writes it into the file",
        )
    found = re.search(r'database "([^"]+)" does not exist', message)
    if found:
        fix = (
            _set(view, "dbname", target.database)
            if target.database
            else "use the database of postgres.database in the profile"
        )
        return f"the server has no database {found.group(1)}", fix
    found = re.search(r'role "([^"]+)" does not exist', message)
    if found:
        fix = _set(view, "user", target.user) if target.user else "use postgres.user's name"
        return f"the server has no user {found.group(1)}", fix
    if "does not match host name" in low:
        from provisioner.postgres.ssl import HOSTS_IN_CERTIFICATE

        names = ", ".join(HOSTS_IN_CERTIFICATE)
        return (
            f"the server's certificate names {names} (and the container's names), not {host}, "
            f"and sslmode {mode} checks the name",
            f"connect to one of those names ({_set(view, 'host', target.host or 'localhost')}), "
            "or use sslmode verify-ca, which checks the CA but not the name",
        )
    if "certificate verify failed" in low:
        ca = params.get("sslrootcert", "~/.postgresql/root.crt")
        trusted = "the system's CA store" if ca == "system" else ca
        fix = (
            _set(view, "sslrootcert", target.sslrootcert)
            if target.sslrootcert
            else "trust the CA envctl wrote next to the env file (.envctl/<id>/ca.crt)"
        )
        if view.kind in ("medusa", "node-url") and ca == "system":
            fix = f"set NODE_EXTRA_CA_CERTS={target.sslrootcert or 'the CA file'}"
        return f"the server's certificate is not signed by a CA this client trusts ({trusted})", fix
    if "root certificate file" in low and "does not exist" in low:
        return (
            f"sslmode {mode} verifies the server but no CA file is given",
            _set(view, "sslrootcert", target.sslrootcert or "the environment's ca.crt"),
        )
    if "could not translate host name" in low:
        return f"the host name {host} does not resolve", _set(
            view, "host", target.host or "127.0.0.1"
        )
    if "timeout expired" in low:
        return f"nothing answered on {host}:{port} within {CONNECT_TIMEOUT}s", up
    if "could not open" in low or "could not load" in low or "could not read" in low:
        return "a certificate or key file the client names cannot be read", (
            "point the sslrootcert/sslcert/sslkey settings (PGSSL* or the URL) at the files "
            f"of the running environment; `envctl env {target.profile_ref}` lists them"
        )
    if "certificate" in low:
        return "the server wants a client certificate this client does not send", (
            "set PGSSLCERT and PGSSLKEY (or sslcert and sslkey in the URL) to the files envctl "
            "wrote, or turn client_cert off in the profile"
        )
    return "the connection failed", up if not target.running else "see the server's log"


def _libpq_detail(message: str) -> str:
    """libpq's reason without the "connection to server at ... failed:" preamble."""
    line = first_line(message).removeprefix("connection failed: ")
    line = re.sub(r"^connection to server (at|on) .*? failed: ", "", line)
    return re.sub(r"^FATAL:\s+", "", line)
