"""A failed connection explained: libpq's error as its cause and the fix, in terms of the
file's variables and what the database really is."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class _Failure:
    """A connection that failed: the client's view, what the database really is, and the facts
    of the view every explanation names."""

    view: ClientView
    target: Target

    @property
    def host(self) -> str:
        return self.view.params.get("host", "the local socket")

    @property
    def port(self) -> str:
        return self.view.params.get("port", "5432")

    @property
    def mode(self) -> str:
        return self.view.params.get("sslmode", "prefer")

    @property
    def up(self) -> str:
        return f"start it: `envctl up {self.target.profile_ref}`"


# A matcher reads libpq's message: None when it is not the rule's, else what it names ("" for
# none); an explanation turns the failure and that name into (cause, fix).
Matcher = Callable[[str], str | None]
Explanation = Callable[[_Failure, str], tuple[str, str]]


def _words(*words: str) -> Matcher:
    """The message holds every one of `words`, case aside."""

    def match(message: str) -> str | None:
        low = message.lower()
        return "" if all(word in low for word in words) else None

    return match


def _names(pattern: str) -> Matcher:
    """`pattern` is found in the message; its first group is what it names."""

    def match(message: str) -> str | None:
        found = re.search(pattern, message)
        return found.group(1) if found else None

    return match


def _ssl_off(failure: _Failure, _: str) -> tuple[str, str]:
    view, target = failure.view, failure.target
    node = view.kind in ("medusa", "node-url")
    how = (
        "node-postgres uses verified SSL for every sslmode but disable and no-verify"
        if node
        else f"sslmode {failure.mode} from {_source(view, 'sslmode')[0]}"
    )
    server = " (the profile has ssl: disable)" if target.sslmode == "disable" else ""
    return (
        f"the client requires SSL ({how}) but the server has SSL off{server}",
        f"{_set(view, 'sslmode', 'disable')}, or turn SSL on in the profile (`ssl: require`)",
    )


def _ssl_only(failure: _Failure, _: str) -> tuple[str, str]:
    view, target = failure.view, failure.target
    mode_var, mode_missing = _source(view, "sslmode")
    wanted = target.sslmode if target.sslmode and target.sslmode != "disable" else "require"
    origin = f"{mode_var} is missing" if mode_missing else f"{mode_var} says {failure.mode}"
    return (
        f"the server accepts only SSL connections (the profile has ssl: {wanted}) and this "
        f"client connects without SSL ({origin})",
        _set(view, "sslmode", wanted),
    )


def _not_ready(failure: _Failure, _: str) -> tuple[str, str]:
    # envctl's own rule: its boot script turns TCP clients away until the password is set.
    return (
        "the server runs but is not ready yet: envctl turns clients away until it has set "
        "the environment's password",
        "wait until `envctl up` reports the database ready; if it failed, its error shows "
        "the server's log",
    )


def _refused(failure: _Failure, _: str) -> tuple[str, str]:
    view, target, host, port = failure.view, failure.target, failure.host, failure.port
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
    return cause, failure.up if not target.running else "check the environment: `envctl status`"


def _no_host(failure: _Failure, _: str) -> tuple[str, str]:
    view, target = failure.view, failure.target
    fix = _set(view, "host", target.host) if target.host else f"set {_source(view, 'host')[0]}"
    return "no host is set, so libpq tried its local Unix socket, where nothing listens", fix


def _wrong_password(failure: _Failure, _: str) -> tuple[str, str]:
    user = failure.view.params.get("user", "?")
    variable, missing = _source(failure.view, "password")
    said = f"{variable} is missing" if missing else f"from {variable}"
    return (
        f"the server rejects the password for user {user} ({said})",
        f"use the environment's password: `envctl env {failure.target.profile_ref} "
        "--show-password` prints it; `envctl up` writes it into the file",
    )


def _no_database(failure: _Failure, database: str) -> tuple[str, str]:
    target = failure.target
    fix = (
        _set(failure.view, "dbname", target.database)
        if target.database
        else "use the database of postgres.database in the profile"
    )
    return f"the server has no database {database}", fix


def _no_role(failure: _Failure, role: str) -> tuple[str, str]:
    target = failure.target
    fix = _set(failure.view, "user", target.user) if target.user else "use postgres.user's name"
    return f"the server has no user {role}", fix


def _wrong_name(failure: _Failure, _: str) -> tuple[str, str]:
    from provisioner.postgres.ssl import HOSTS_IN_CERTIFICATE

    names = ", ".join(HOSTS_IN_CERTIFICATE)
    return (
        f"the server's certificate names {names} (and the container's names), not "
        f"{failure.host}, and sslmode {failure.mode} checks the name",
        f"connect to one of those names "
        f"({_set(failure.view, 'host', failure.target.host or 'localhost')}), "
        "or use sslmode verify-ca, which checks the CA but not the name",
    )


def _untrusted(failure: _Failure, _: str) -> tuple[str, str]:
    view, target = failure.view, failure.target
    ca = view.params.get("sslrootcert", "~/.postgresql/root.crt")
    trusted = "the system's CA store" if ca == "system" else ca
    fix = (
        _set(view, "sslrootcert", target.sslrootcert)
        if target.sslrootcert
        else "trust the CA envctl wrote next to the env file (.envctl/<id>/ca.crt)"
    )
    if view.kind in ("medusa", "node-url") and ca == "system":
        fix = f"set NODE_EXTRA_CA_CERTS={target.sslrootcert or 'the CA file'}"
    return f"the server's certificate is not signed by a CA this client trusts ({trusted})", fix


def _no_ca(failure: _Failure, _: str) -> tuple[str, str]:
    return (
        f"sslmode {failure.mode} verifies the server but no CA file is given",
        _set(failure.view, "sslrootcert", failure.target.sslrootcert or "the environment's ca.crt"),
    )


def _unresolved(failure: _Failure, _: str) -> tuple[str, str]:
    return f"the host name {failure.host} does not resolve", _set(
        failure.view, "host", failure.target.host or "127.0.0.1"
    )


def _timed_out(failure: _Failure, _: str) -> tuple[str, str]:
    return (
        f"nothing answered on {failure.host}:{failure.port} within {CONNECT_TIMEOUT}s",
        failure.up,
    )


def _unreadable(failure: _Failure, _: str) -> tuple[str, str]:
    return "a certificate or key file the client names cannot be read", (
        "point the sslrootcert/sslcert/sslkey settings (PGSSL* or the URL) at the files "
        f"of the running environment; `envctl env {failure.target.profile_ref}` lists them"
    )


def _client_cert(failure: _Failure, _: str) -> tuple[str, str]:
    return "the server wants a client certificate this client does not send", (
        "set PGSSLCERT and PGSSLKEY (or sslcert and sslkey in the URL) to the files envctl "
        "wrote, or turn client_cert off in the profile"
    )


# In the order they are tried: a message may hold several kinds' words, the first rule wins.
_RULES: tuple[tuple[Matcher, Explanation], ...] = (
    (_words("server does not support ssl"), _ssl_off),
    (_words("no pg_hba.conf entry", "no encryption"), _ssl_only),
    (_words("pg_hba.conf rejects connection"), _not_ready),
    (_words("connection refused"), _refused),
    (_words("no such file or directory"), _no_host),
    (_words("password authentication failed"), _wrong_password),
    (_names(r'database "([^"]+)" does not exist'), _no_database),
    (_names(r'role "([^"]+)" does not exist'), _no_role),
    (_words("does not match host name"), _wrong_name),
    (_words("certificate verify failed"), _untrusted),
    (_words("root certificate file", "does not exist"), _no_ca),
    (_words("could not translate host name"), _unresolved),
    (_words("timeout expired"), _timed_out),
    (_words("could not open"), _unreadable),
    (_words("could not load"), _unreadable),
    (_words("could not read"), _unreadable),
    (_words("certificate"), _client_cert),
)


def explain_failure(message: str, view: ClientView, target: Target) -> tuple[str, str]:
    """A connection error as (cause, fix), in terms of the file's variables."""
    failure = _Failure(view, target)
    for matches, explain in _RULES:
        named = matches(message)
        if named is not None:
            return explain(failure, named)
    return "the connection failed", failure.up if not target.running else "see the server's log"


def _libpq_detail(message: str) -> str:
    """libpq's reason without the "connection to server at ... failed:" preamble."""
    line = first_line(message).removeprefix("connection failed: ")
    line = re.sub(r"^connection to server (at|on) .*? failed: ", "", line)
    return re.sub(r"^FATAL:\s+", "", line)
