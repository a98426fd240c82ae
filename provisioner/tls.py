"""A throwaway certificate authority for SSL test environments.

Each call mints a brand-new CA, uses it to sign a server certificate (and optionally a client
certificate for mutual TLS), and then forgets the CA's private key. Nothing issued here can be
trusted beyond the one environment it was made for, so there is no revocation, no renewal and no
key storage to get wrong.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateSet", "generate_certificates"]

# X.520 caps commonName at 64 characters and `cryptography` enforces it.
_MAX_COMMON_NAME = 64
# Containers and the host rarely agree on the time to the second; backdating keeps a freshly
# minted certificate from being "not yet valid" inside the container.
_CLOCK_SKEW = datetime.timedelta(hours=1)
# Used only when no SAN fits in a commonName; verifiers match on the SANs anyway.
_FALLBACK_SERVER_CN = "envctl test server"


@dataclass(frozen=True)
class CertificateSet:
    """PEM-encoded material for one SSL test environment.

    The private keys are kept out of ``repr`` so a logged or printed set never leaks them.
    """

    ca_cert: bytes
    server_cert: bytes
    server_key: bytes = field(repr=False)
    client_cert: bytes | None
    client_key: bytes | None = field(repr=False)


@dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def generate_certificates(
    *, hostnames: Sequence[str], client_user: str | None = None, valid_days: int = 30
) -> CertificateSet:
    """Return a fresh CA plus a server certificate for ``hostnames``.

    ``hostnames`` may mix DNS names and IP addresses (IPv4 or IPv6); IPs become IPAddress SANs and
    everything else DNSName SANs. The server's subject CN is the first DNS name. When
    ``client_user`` is set, a client certificate with CN = ``client_user`` is issued too, for
    Postgres ``cert`` authentication.

    Raises ValueError for an empty ``hostnames``, a blank entry, a non-ASCII DNS name, a
    ``client_user`` that is empty or longer than 64 characters, or a non-positive ``valid_days``.
    """
    if isinstance(hostnames, str):
        # A bare string is a Sequence[str] too; iterating it would yield one SAN per character.
        raise TypeError("hostnames must be a sequence of names, not a single string")
    if not hostnames:
        raise ValueError("hostnames must name at least one DNS name or IP address")
    if valid_days < 1:
        raise ValueError(f"valid_days must be at least 1, got {valid_days}")
    if client_user is not None and not 1 <= len(client_user) <= _MAX_COMMON_NAME:
        raise ValueError(
            f"client_user must be 1 to {_MAX_COMMON_NAME} characters to fit a certificate CN, "
            f"got {client_user!r}"
        )

    dns_names, ip_addresses = _split_hostnames(hostnames)
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - _CLOCK_SKEW
    not_after = now + datetime.timedelta(days=valid_days)

    ca = _make_ca(not_before, not_after)

    server_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ip) for ip in ip_addresses]
    server_cert = _issue_leaf(
        ca,
        server_key,
        common_name=_server_common_name(dns_names, ip_addresses),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
        not_before=not_before,
        not_after=not_after,
    )

    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    if client_user is not None:
        client_key = ec.generate_private_key(ec.SECP256R1())
        client_cert = _issue_leaf(
            ca,
            client_key,
            common_name=client_user,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            sans=None,
            not_before=not_before,
            not_after=not_after,
        )
        client_cert_pem = _cert_pem(client_cert)
        client_key_pem = _key_pem(client_key)

    return CertificateSet(
        ca_cert=_cert_pem(ca.cert),
        server_cert=_cert_pem(server_cert),
        server_key=_key_pem(server_key),
        client_cert=client_cert_pem,
        client_key=client_key_pem,
    )


def _split_hostnames(
    hostnames: Sequence[str],
) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    dns_names: list[str] = []
    ip_addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for raw in hostnames:
        name = raw.strip()
        if not name:
            raise ValueError(f"hostnames contains a blank entry: {list(hostnames)!r}")
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            if name not in dns_names:
                dns_names.append(name)
        else:
            if ip not in ip_addresses:
                ip_addresses.append(ip)
    return dns_names, ip_addresses


def _server_common_name(
    dns_names: Sequence[str], ip_addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> str:
    # libpq and OpenSSL match on the SANs and ignore the CN when SANs are present, so the CN is
    # for people reading the certificate; any SAN that fits the 64-character limit will do.
    for candidate in [*dns_names, *(str(ip) for ip in ip_addresses)]:
        if len(candidate) <= _MAX_COMMON_NAME:
            return candidate
    return _FALLBACK_SERVER_CN


def _make_ca(not_before: datetime.datetime, not_after: datetime.datetime) -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    # A random suffix keeps CAs from different runs distinguishable in a trust store or a log.
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"envctl throwaway CA {secrets.token_hex(8)}")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # path_length=0: this CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Issuer(name=name, key=key, cert=cert)


def _issue_leaf(
    ca: _Issuer,
    key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    sans: Sequence[x509.GeneralName] | None,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # An EC key signs (ECDHE handshakes, TLS 1.3) or does static ECDH; it never
            # encrypts, so key_encipherment would be wrong for it.
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable across a crash; some filesystems refuse to open or fsync a
    # directory, and the data is already safely in place by then, so failure here is not fatal.
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
