"""TLS contexts for every listener, and the development certificate.

One place decides the protocol floor (TLS 1.2, MSSanté operator rules) and the
cipher suites (ECDHE + AES-GCM, CHACHA20 tolerated), so no front end can open
a weaker listener. The development certificate is self-signed and only for
``make run`` and the tests; the PKI issue replaces it with a CA chain.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "MSSANTE_CIPHERS",
    "certificate_names",
    "make_dev_certificate",
    "server_context",
]

# MSSanté: ECDHE key exchange with AES-GCM (TLS 1.2); TLS 1.3 suites are fixed by OpenSSL.
MSSANTE_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!RC4:!3DES:!EXPORT"


def server_context(
    cert_file: Path, key_file: Path, client_ca_file: Path | None = None
) -> ssl.SSLContext:
    """A server context refusing anything below TLS 1.2.

    With ``client_ca_file``, a client may present a certificate (mutual TLS between
    operators); one that does not chain to those CAs fails the handshake.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if client_ca_file is not None:
        ctx.load_verify_locations(cafile=str(client_ca_file))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(MSSANTE_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def make_dev_certificate(
    directory: Path, hostnames: list[str], *, days: int = 825
) -> tuple[Path, Path]:
    """Write a self-signed ECDSA P-256 certificate and key; return their paths.

    The key file is created with mode 0600 before any byte is written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pli development"),
            x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
        ]
    )
    sans: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "server.crt"
    key_path = directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def certificate_names(peercert: dict[str, object] | None) -> list[str]:
    """The DNS names a verified peer certificate is for (subjectAltName, else the CN)."""
    if not peercert:
        return []
    sans = peercert.get("subjectAltName") or ()
    names = [str(v).lower() for k, v in sans if k == "DNS"]  # type: ignore[attr-defined]
    if names:
        return names
    for rdn in peercert.get("subject") or ():  # type: ignore[attr-defined]
        for key, value in rdn:
            if key == "commonName":
                names.append(str(value).lower())
    return names
