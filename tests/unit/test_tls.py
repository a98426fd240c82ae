from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from provisioner.tls import CertificateSet, generate_certificates
from tests.conftest import unavailable

HOSTNAMES = ["localhost", "127.0.0.1", "::1", "db"]


@pytest.fixture(scope="module")
def certs() -> CertificateSet:
    # One set shared by the read-only tests keeps the file fast; tests that need their own
    # material generate it themselves.
    return generate_certificates(hostnames=HOSTNAMES, client_user="app_user", valid_days=7)


def _cert(pem: bytes | None) -> x509.Certificate:
    assert pem is not None
    return x509.load_pem_x509_certificate(pem)


def _key(pem: bytes | None) -> ec.EllipticCurvePrivateKey:
    assert pem is not None
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _builder(ca: x509.Certificate) -> PolicyBuilder:
    return PolicyBuilder().store(Store([ca])).time(datetime.datetime.now(datetime.UTC))


def _client_builder(ca: x509.Certificate) -> PolicyBuilder:
    # The default (Web PKI) client policy insists on a SAN, but Postgres identifies a client by
    # its subject CN and OpenSSL does not ask for one, so the client cert carries none. Relax only
    # that one rule; every other end-entity check (EKU, key usage, chain, validity) still applies.
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    return _builder(ca).extension_policies(
        ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy
    )


def _cn(cert: x509.Certificate) -> str:
    value = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(value, str)
    return value


def _public_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    "subject",
    [DNSName("localhost"), DNSName("db"), IPAddress(ipaddress.ip_address("127.0.0.1"))],
    ids=["localhost", "db", "ipv4"],
)
def test_server_cert_verifies_against_ca_for_every_san(
    certs: CertificateSet, subject: DNSName | IPAddress
) -> None:
    ca, server = _cert(certs.ca_cert), _cert(certs.server_cert)
    server.verify_directly_issued_by(ca)
    chain = _builder(ca).build_server_verifier(subject).verify(server, [])
    assert chain[-1] == ca


def test_ipv6_loopback_is_an_ip_san_and_verifies(certs: CertificateSet) -> None:
    server = _cert(certs.server_cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("::1") in san.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "db"]
    verifier = _builder(_cert(certs.ca_cert)).build_server_verifier(
        IPAddress(ipaddress.ip_address("::1"))
    )
    verifier.verify(server, [])


@pytest.mark.parametrize(
    "subject",
    [DNSName("example.com"), IPAddress(ipaddress.ip_address("10.0.0.1"))],
    ids=["dns", "ip"],
)
def test_server_cert_is_rejected_for_a_name_not_in_the_sans(
    certs: CertificateSet, subject: DNSName | IPAddress
) -> None:
    verifier = _builder(_cert(certs.ca_cert)).build_server_verifier(subject)
    with pytest.raises(VerificationError):
        verifier.verify(_cert(certs.server_cert), [])


def test_server_cert_is_rejected_by_another_ca(certs: CertificateSet) -> None:
    other = generate_certificates(hostnames=["localhost"])
    verifier = _builder(_cert(other.ca_cert)).build_server_verifier(DNSName("localhost"))
    with pytest.raises(VerificationError):
        verifier.verify(_cert(certs.server_cert), [])


def test_server_cert_subject_cn_is_the_first_dns_name() -> None:
    certs = generate_certificates(hostnames=["127.0.0.1", "db", "localhost"])
    assert _cn(_cert(certs.server_cert)) == "db"


def test_client_cert_has_the_user_as_cn_and_verifies_as_a_client(certs: CertificateSet) -> None:
    ca, client = _cert(certs.ca_cert), _cert(certs.client_cert)
    assert _cn(client) == "app_user"
    client.verify_directly_issued_by(ca)
    verified = _client_builder(ca).build_client_verifier().verify(client, [])
    assert verified.chain[-1] == ca
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_client_cert_is_not_accepted_as_a_server_cert(certs: CertificateSet) -> None:
    # The client cert has no SANs and only clientAuth, so it must not pass as a server.
    verifier = _builder(_cert(certs.ca_cert)).build_server_verifier(DNSName("localhost"))
    with pytest.raises(VerificationError):
        verifier.verify(_cert(certs.client_cert), [])


def test_server_cert_is_not_accepted_as_a_client_cert(certs: CertificateSet) -> None:
    # Proves the relaxed client policy still checks the EKU: serverAuth alone must not pass.
    verifier = _client_builder(_cert(certs.ca_cert)).build_client_verifier()
    with pytest.raises(VerificationError):
        verifier.verify(_cert(certs.server_cert), [])


def test_no_client_material_without_a_client_user() -> None:
    certs = generate_certificates(hostnames=["localhost"])
    assert certs.client_cert is None
    assert certs.client_key is None


def test_keys_match_their_certs_and_are_p256_pkcs8(certs: CertificateSet) -> None:
    for cert_pem, key_pem in [
        (certs.server_cert, certs.server_key),
        (certs.client_cert, certs.client_key),
    ]:
        assert key_pem is not None
        assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8, unencrypted
        key = _key(key_pem)
        assert isinstance(key.curve, ec.SECP256R1)
        assert _public_der(key.public_key()) == _public_der(
            _cert(cert_pem).public_key()  # type: ignore[arg-type]
        )


def test_ca_extensions(certs: CertificateSet) -> None:
    ca = _cert(certs.ca_cert)
    assert _cn(ca).startswith("envctl throwaway CA ")
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


def test_leaf_extensions_and_validity(certs: CertificateSet) -> None:
    ca = _cert(certs.ca_cert)
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    now = datetime.datetime.now(datetime.UTC)
    for pem, purpose in [
        (certs.server_cert, ExtendedKeyUsageOID.SERVER_AUTH),
        (certs.client_cert, ExtendedKeyUsageOID.CLIENT_AUTH),
    ]:
        leaf = _cert(pem)
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature
        assert not usage.key_cert_sign
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            purpose
        ]
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ca_ski.digest
        # Backdated about an hour for clock skew; valid for the requested 7 days.
        skew = now - leaf.not_valid_before_utc
        assert datetime.timedelta(minutes=59) < skew < datetime.timedelta(minutes=61)
        lifetime = leaf.not_valid_after_utc - now
        assert datetime.timedelta(days=7, minutes=-1) < lifetime <= datetime.timedelta(days=7)


def test_two_calls_give_different_cas_and_serials() -> None:
    first = generate_certificates(hostnames=["localhost"])
    second = generate_certificates(hostnames=["localhost"])
    ca1, ca2 = _cert(first.ca_cert), _cert(second.ca_cert)
    assert ca1.subject != ca2.subject
    assert ca1.serial_number != ca2.serial_number
    assert _public_der(ca1.public_key()) != _public_der(ca2.public_key())  # type: ignore[arg-type]
    assert _cert(first.server_cert).serial_number != _cert(second.server_cert).serial_number


def test_private_keys_stay_out_of_repr(certs: CertificateSet) -> None:
    text = repr(certs)
    assert b"PRIVATE KEY" not in text.encode()
    assert "server_key" not in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hostnames": []}, "at least one"),
        ({"hostnames": ["localhost", " "]}, "blank"),
        ({"hostnames": ["localhost"], "client_user": ""}, "client_user"),
        ({"hostnames": ["localhost"], "client_user": "u" * 65}, "client_user"),
        ({"hostnames": ["localhost"], "valid_days": 0}, "valid_days"),
    ],
    ids=["empty", "blank", "empty-user", "long-user", "zero-days"],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_certificates(**kwargs)  # type: ignore[arg-type]


def test_a_bare_string_is_not_taken_as_a_list_of_names() -> None:
    with pytest.raises(TypeError):
        generate_certificates(hostnames="localhost")


def test_openssl_verifies_the_chain_independently(certs: CertificateSet, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        unavailable("the openssl binary is needed to check the chain independently")
    assert certs.client_cert is not None
    (tmp_path / "ca.pem").write_bytes(certs.ca_cert)
    (tmp_path / "server.pem").write_bytes(certs.server_cert)
    (tmp_path / "client.pem").write_bytes(certs.client_cert)
    openssl = shutil.which("openssl")
    assert openssl is not None
    for leaf, purpose, extra in [
        ("server.pem", "sslserver", ["-verify_hostname", "localhost"]),
        ("server.pem", "sslserver", ["-verify_ip", "::1"]),
        ("client.pem", "sslclient", []),
    ]:
        result = subprocess.run(
            [openssl, "verify", "-CAfile", "ca.pem", "-purpose", purpose, *extra, leaf],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{leaf}: OK" in result.stdout
