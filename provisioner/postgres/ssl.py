"""The server side of a profile's SSL mode: certificates, `-c` settings and pg_hba rules.

Client and server agree by construction: with `disable` the server has SSL off; with any other
strict mode it has SSL on and pg_hba accepts only `hostssl`, so a client without SSL is refused;
with `prefer` it has SSL on and pg_hba accepts both, as most real servers do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from provisioner.runtime import ServerFile

if TYPE_CHECKING:  # cryptography is imported only when an environment uses SSL
    from provisioner.tls import CertificateSet

HOSTS_IN_CERTIFICATE = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class ServerSsl:
    """What the server needs for one SSL mode, and the certificates clients need."""

    settings: dict[str, str]
    files: tuple[ServerFile, ...]
    certificates: CertificateSet | None


def server_ssl(
    *,
    mode: str,
    client_cert: bool,
    user: str,
    config_dir: str,
    extra_hostnames: tuple[str, ...] = (),
) -> ServerSsl:
    """Settings and files for `mode`; certificates are fresh for every environment."""
    if mode == "disable":
        return ServerSsl(settings={"ssl": "off"}, files=(), certificates=None)
    from provisioner.tls import generate_certificates

    certificates = generate_certificates(
        hostnames=[*HOSTS_IN_CERTIFICATE, *extra_hostnames],
        client_user=user if client_cert else None,
    )
    files = (
        ServerFile("server.crt", certificates.server_cert, 0o644),
        ServerFile("server.key", certificates.server_key, 0o600),
        ServerFile("ca.crt", certificates.ca_cert, 0o644),
        ServerFile("pg_hba.conf", _hba(mode, client_cert).encode(), 0o600),
    )
    settings = {
        "ssl": "on",
        "ssl_cert_file": f"{config_dir}/server.crt",
        "ssl_key_file": f"{config_dir}/server.key",
        "ssl_ca_file": f"{config_dir}/ca.crt",
        "hba_file": f"{config_dir}/pg_hba.conf",
    }
    return ServerSsl(settings=settings, files=files, certificates=certificates)


def _hba(mode: str, client_cert: bool) -> str:
    if mode == "prefer":
        # `host` matches TCP connections with and without SSL: both are let in.
        return (
            "# written by envctl: SSL is offered, plain TCP connections are accepted too\n"
            "local all all trust\n"
            "host all all all scram-sha-256\n"
        )
    # Only hostssl lines: a client that does not use SSL is refused by pg_hba itself.
    client_rule = " clientcert=verify-full" if client_cert else ""
    return (
        "# written by envctl: SSL is required for every TCP connection\n"
        "local all all trust\n"
        f"hostssl all all all scram-sha-256{client_rule}\n"
    )
