"""One development PKI per session (RSA 2048), the openssl runner, and an EC signer.

Generating keys is the slow part of these tests, so the PKI is made once into
``tmp_path_factory``; tests that revoke or issue use their own addresses so
that the order of tests never matters.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.smime import pki

PASSPHRASE = b"test-passphrase"
DOMAIN = "hopital.example.fr"
ORG = "secretariat@hopital.example.fr"
APP = "dpi@hopital.example.fr"


@dataclass(frozen=True)
class DevPki:
    paths: pki.PkiPaths
    root: x509.Certificate
    intermediate: x509.Certificate
    org: pki.CertifiedKey
    app: pki.CertifiedKey

    def crl(self) -> x509.CertificateRevocationList:
        """Read each time: a test may have revoked something since the session started."""
        return pki.load_crl(self.paths.crl)

    def files(self, address: str) -> tuple[Path, Path]:
        return self.paths.mailbox(address)


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    paths = pki.init_pki(
        tmp_path_factory.mktemp("smime") / "pki", [DOMAIN], [ORG, APP], PASSPHRASE, key_size=2048
    )
    return DevPki(
        paths,
        pki.load_certificate(paths.root_cert),
        pki.load_certificate(paths.intermediate_cert),
        pki.load_identity(*paths.mailbox(ORG), PASSPHRASE),
        pki.load_identity(*paths.mailbox(APP), PASSPHRASE),
    )


@pytest.fixture(scope="session")
def ec_signer(
    dev_pki: DevPki, tmp_path_factory: pytest.TempPathFactory
) -> tuple[pki.CertifiedKey, Path, Path]:
    """An ECDSA P-256 S/MIME certificate under the intermediate, with clear key files."""
    ca_key = pki.load_private_key(dev_pki.paths.intermediate_key, PASSPHRASE)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ski = dev_pki.intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec@" + DOMAIN)]))
        .issuer_name(dev_pki.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("ec@" + DOMAIN)]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("ec")
    (d / "ec.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "ec.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki.CertifiedKey(cert, key, (dev_pki.intermediate,)), d / "ec.pem", d / "ec.key"


@pytest.fixture(scope="session")
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("the openssl binary is required (apt-get install openssl)")
    return path


def run_openssl(
    binary: str, *args: str, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        [binary, "cms", *args], input=stdin, capture_output=True, timeout=30, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"openssl cms {' '.join(args)}: {proc.stderr.decode()[:500]}")
    return proc
