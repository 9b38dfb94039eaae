from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedpeft.runtime.flower.certs import make_credentials


def test_the_server_certificate_is_signed_by_the_ca_for_the_given_hosts(tmp_path: Path) -> None:
    creds = make_credentials(tmp_path, nodes=2, hosts=["10.1.2.3", "link.example"])
    ca = x509.load_pem_x509_certificate(creds.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(creds.server_cert.read_bytes())
    cert.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    assert names.get_values_for_type(x509.DNSName) == ["link.example"]
    assert oct(creds.server_key.stat().st_mode)[-3:] == "600"


def test_each_node_gets_its_own_key_pair_in_openssh_format(tmp_path: Path) -> None:
    creds = make_credentials(tmp_path, nodes=2)
    publics = [pub.read_bytes() for _, pub in creds.node_keys]
    assert len(set(publics)) == 2 and all(p.startswith(b"ecdsa-sha2-nistp384 ") for p in publics)
    private = serialization.load_ssh_private_key(creds.node_keys[0][0].read_bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert (
        private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        == publics[0].strip()
    )


def test_existing_credentials_are_kept_unless_forced(tmp_path: Path) -> None:
    from fedpeft.errors import ConfigError

    first = make_credentials(tmp_path, nodes=1)
    ca = first.ca_cert.read_bytes()
    with pytest.raises(ConfigError, match=r"already holds credentials \(ca.crt, node-0.key, server.key\).*--force"):
        make_credentials(tmp_path, nodes=1)
    assert first.ca_cert.read_bytes() == ca
    assert make_credentials(tmp_path, nodes=1, force=True).ca_cert.read_bytes() != ca
