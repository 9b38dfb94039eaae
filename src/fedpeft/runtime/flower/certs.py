"""Credentials for a secure Flower deployment: a CA and the SuperLink's TLS certificate (with the addresses
it is reached at), and one ECDSA key pair per SuperNode for node authentication (public keys in OpenSSH
format, as ``flwr supernode register`` wants). The same files as the openssl / ssh-keygen steps in
README.md's deployment section."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedpeft.errors import ConfigError


@dataclass(frozen=True)
class Credentials:
    """Where ``make_credentials`` wrote each file."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    node_keys: list[tuple[Path, Path]]  # (private key, public key) per SuperNode


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path, fmt: serialization.PrivateFormat) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    path.chmod(0o600)


def refuse_to_replace(folder: Path) -> None:
    """A ConfigError when ``folder`` already holds credentials (a new CA invalidates the ones handed out)."""
    existing = sorted(
        p.name for p in [folder / "ca.crt", folder / "server.key", *folder.glob("node-*.key")] if p.exists()
    )
    if existing:
        raise ConfigError(
            f"{folder} already holds credentials ({', '.join(existing)}); replacing them invalidates the ones "
            "handed out: pass --force to replace them, or choose another folder"
        )


def make_credentials(
    folder: Path, nodes: int, hosts: list[str] | None = None, days: int = 365, force: bool = False
) -> Credentials:
    """Write ca.crt, server.pem / server.key (valid for ``hosts``, default 127.0.0.1 and localhost) and
    node-I.key / node-I.pub for I < ``nodes`` into ``folder``. Credentials already there are replaced only
    with ``force`` (a new CA invalidates every certificate and key handed out before).

    Example:
        >>> creds = make_credentials(Path("certs"), nodes=2, hosts=["10.0.0.5"])  # doctest: +SKIP
    """
    if not force:
        refuse_to_replace(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hosts = hosts or ["127.0.0.1", "localhost"]
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("fedpeft CA"))
        .issuer_name(_name("fedpeft CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(valid)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(valid)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    creds = Credentials(folder / "ca.crt", folder / "server.pem", folder / "server.key", [])
    creds.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    creds.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, creds.server_key, serialization.PrivateFormat.PKCS8)
    for i in range(nodes):
        node = ec.generate_private_key(ec.SECP384R1())
        private, public = folder / f"node-{i}.key", folder / f"node-{i}.pub"
        _write_key(node, private, serialization.PrivateFormat.OpenSSH)
        public.write_bytes(
            node.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b"\n"
        )
        creds.node_keys.append((private, public))
    return creds
