"""The development PKI that mimics the French health PKI (IGC-Santé), and certificate loaders.

This module owns the on-disk layout of pli's PKI (``PkiPaths``): a root CA, an
intermediate CA that signs everything else and the CRL, TLS server
certificates per served domain and S/MIME certificates per mailbox; and the
functions production uses to read a certificate, a chain, a key or a CRL from
files. It must never be used to mint certificates trusted outside a test or
demo installation (the real ones come from IGC-Santé), never write a private
key with a mode other than 0600, and never build a file name from an address
or domain it has not validated.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.base.errors import InvalidInput

__all__ = [
    "CertifiedKey",
    "PkiError",
    "PkiPaths",
    "PrivateKey",
    "init_pki",
    "issue",
    "load_certificate",
    "load_certificates",
    "load_crl",
    "load_identity",
    "load_private_key",
    "revoke",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_ORG = "pli development PKI (mimics IGC-Sante, not trusted)"
_ROOT_CN = "TEST AC RACINE IGC-SANTE ELEMENTAIRE (pli)"
_INTERMEDIATE_CN = "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS (pli)"
_CRL_VALIDITY = dt.timedelta(days=30)
_LEAF_VALIDITY = dt.timedelta(days=3 * 365)
_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+=?^_`{|}~-]+)*$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)


class PkiError(InvalidInput):
    """The PKI directory or a request to it is wrong; the message says what."""

    default_reason = "pki"

    def __init__(self, text: str) -> None:
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class CertifiedKey:
    """A certificate, its private key and the intermediates a verifier needs to reach a root."""

    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()


def safe_domain(domain: str) -> str:
    """A validated, lower-case DNS name: the only kind ever used in a file name here."""
    d = domain.strip().lower().rstrip(".")
    if not d.isascii() or not _DOMAIN.match(d):
        raise PkiError(f"not a valid domain name: {domain!r}")
    return d


def safe_address(address: str) -> str:
    """A validated lower-case mailbox address, safe as a file name.

    The dot-atom grammar (RFC 5322 §3.4.1) already excludes ``/``, ``\\``, NUL
    and ``..``; the explicit checks say so to the next reader.
    """
    a = address.strip().lower()
    if a.startswith("<") and a.endswith(">"):
        a = a[1:-1]
    if len(a) > 254 or "/" in a or "\\" in a or "\x00" in a or ".." in a or a.count("@") != 1:
        raise PkiError(f"not a usable mailbox address: {address!r}")
    local, _, domain = a.partition("@")
    if not local.isascii() or not _LOCAL.match(local) or len(local) > 64:
        raise PkiError(f"not a usable mailbox address: {address!r}")
    return f"{local}@{safe_domain(domain)}"


@dataclass(frozen=True, slots=True)
class PkiPaths:
    """Where each file of a PKI directory lives: the one place that knows the layout.

    ``ca/root.pem`` · ``ca/root.key`` · ``ca/intermediate.pem`` · ``ca/intermediate.key`` ·
    ``ca/chain.pem`` (intermediate then root, for ``openssl -CAfile``) · ``crl.pem`` ·
    ``tls/<domain>.pem|.key`` · ``mailboxes/<address>.pem|.key`` ·
    ``revoked/<address>.<serial>.pem|.key`` (kept: old mail stays decryptable).
    """

    directory: Path

    @property
    def root_cert(self) -> Path:
        return self.directory / "ca" / "root.pem"

    @property
    def root_key(self) -> Path:
        return self.directory / "ca" / "root.key"

    @property
    def intermediate_cert(self) -> Path:
        return self.directory / "ca" / "intermediate.pem"

    @property
    def intermediate_key(self) -> Path:
        return self.directory / "ca" / "intermediate.key"

    @property
    def chain(self) -> Path:
        return self.directory / "ca" / "chain.pem"

    @property
    def crl(self) -> Path:
        return self.directory / "crl.pem"

    def tls(self, domain: str) -> tuple[Path, Path]:
        d = safe_domain(domain)
        return self.directory / "tls" / f"{d}.pem", self.directory / "tls" / f"{d}.key"

    def mailbox(self, address: str) -> tuple[Path, Path]:
        a = safe_address(address)
        return (
            self.directory / "mailboxes" / f"{a}.pem",
            self.directory / "mailboxes" / f"{a}.key",
        )

    def revoked(self, address: str, serial: int) -> tuple[Path, Path]:
        stem = f"{safe_address(address)}.{serial:x}"
        return (
            self.directory / "revoked" / f"{stem}.pem",
            self.directory / "revoked" / f"{stem}.key",
        )


# ---------------------------------------------------------------- files


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with ``mode`` set at creation: a key is never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_cert(path: Path, *certs: x509.Certificate) -> None:
    _write(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs), 0o644)


def _write_key(path: Path, key: PrivateKey, passphrase: bytes | None) -> None:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    _write(
        path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc),
        0o600,
    )


def load_certificate(path: Path) -> x509.Certificate:
    """The first certificate of a PEM (or DER) file."""
    return load_certificates(path)[0]


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, or the one of a DER file."""
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except (ValueError, x509.InvalidVersion) as exc:
        raise PkiError(f"{path}: not a certificate file") from exc


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """An RSA or EC private key from a PEM or DER file; a wrong passphrase is named."""
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, passphrase)
        else:
            key = serialization.load_der_private_key(data, passphrase)
    except TypeError as exc:  # cryptography: a passphrase given for a clear key, or missing
        why = "passphrase required" if passphrase is None else "key is not encrypted"
        raise PkiError(f"{path}: {why}") from exc
    except ValueError as exc:
        raise PkiError(f"{path}: wrong passphrase or not a private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: only RSA and EC keys are supported")
    return key


def load_crl(path: Path) -> x509.CertificateRevocationList:
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise PkiError(f"{path}: not a CRL") from exc


def load_identity(
    cert_path: Path, key_path: Path, passphrase: bytes | None = None, chain_path: Path | None = None
) -> CertifiedKey:
    """A signing/decryption identity: the first certificate of ``cert_path`` is the leaf,
    the others (and those of ``chain_path``, roots excluded) its chain."""
    certs = load_certificates(cert_path)
    extra = load_certificates(chain_path) if chain_path else []
    chain = [c for c in certs[1:] + extra if c.issuer != c.subject]
    key = load_private_key(key_path, passphrase)
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != certs[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise PkiError(f"{key_path}: the key does not belong to {cert_path}")
    return CertifiedKey(certs[0], key, tuple(chain))


# ---------------------------------------------------------------- issuance


def _new_key(key_size: int) -> rsa.RSAPrivateKey:
    """RSA, because S/MIME encryption to a recipient needs key *transport* (RFC 8551 §2.3):
    every mail client and ``openssl cms`` can decrypt RSA KeyTransRecipientInfo, while
    ECDH KeyAgreeRecipientInfo support is patchy; IGC-Santé certificates are RSA too."""
    if key_size not in (2048, 3072, 4096):
        raise PkiError("RSA key size must be 2048, 3072 or 4096")
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def _name(cn: str, ou: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
    ]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _builder(
    subject: x509.Name,
    issuer: x509.Certificate | None,
    public_key: rsa.RSAPublicKey,
    not_before: dt.datetime,
    validity: dt.timedelta,
) -> x509.CertificateBuilder:
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    return b


def _key_usage(*, sign: bool = False, encipher: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_cert(
    cn: str,
    key: rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: PrivateKey,
    path_length: int | None,
    now: dt.datetime,
    years: int,
) -> x509.Certificate:
    return (
        _builder(_name(cn), issuer, key.public_key(), now, dt.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)


def _issuer(paths: PkiPaths, passphrase: bytes | None) -> CertifiedKey:
    if not paths.intermediate_cert.is_file():
        raise PkiError(f"no PKI in {paths.directory} (run pli pki init)")
    return CertifiedKey(
        load_certificate(paths.intermediate_cert),
        load_private_key(paths.intermediate_key, passphrase),
    )


def _issue_tls(
    ca: CertifiedKey,
    paths: PkiPaths,
    domain: str,
    passphrase: bytes | None,
    key_size: int,
    now: dt.datetime,
) -> None:
    d = safe_domain(domain)
    key = _new_key(key_size)
    cert = (
        _builder(_name(d, "SERVEUR"), ca.cert, key.public_key(), now, dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, encipher=True), critical=True)
        # Operators authenticate each other with these certificates (mutual TLS): both.
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d)]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    cert_path, key_path = paths.tls(d)
    _write_key(key_path, key, passphrase)
    _write_cert(cert_path, cert, ca.cert)


def _issue_mailbox(
    ca: CertifiedKey,
    paths: PkiPaths,
    address: str,
    passphrase: bytes | None,
    key_size: int,
    now: dt.datetime,
    validity: dt.timedelta,
    kind: str,
) -> CertifiedKey:
    a = safe_address(address)
    key = _new_key(key_size)
    # One key signs and decrypts (IGC-Santé issues two; one keeps the development PKI simple).
    cert = (
        _builder(_name(a, kind), ca.cert, key.public_key(), now, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, encipher=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(a)]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    cert_path, key_path = paths.mailbox(a)
    _write_key(key_path, key, passphrase)
    _write_cert(cert_path, cert, ca.cert)
    return CertifiedKey(cert, key, (ca.cert,))


def _write_crl(
    paths: PkiPaths,
    ca: CertifiedKey,
    revoked: list[x509.RevokedCertificate],
    number: int,
    now: dt.datetime,
) -> None:
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now)
        .next_update(now + _CRL_VALIDITY)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    for r in revoked:
        b = b.add_revoked_certificate(r)
    crl = b.sign(ca.key, hashes.SHA256())
    _write(paths.crl, crl.public_bytes(serialization.Encoding.PEM), 0o644)


def init_pki(
    directory: Path,
    domains: list[str],
    mailboxes: list[str],
    passphrase: bytes | None,
    *,
    key_size: int = 3072,
) -> PkiPaths:
    """Create a root, an intermediate, TLS certificates for ``domains``, S/MIME ones for
    ``mailboxes`` (ORG/APP boxes) and an empty CRL. Refuses to overwrite an existing PKI:
    replacing a CA silently would orphan every certificate issued under it."""
    paths = PkiPaths(directory)
    if paths.root_cert.exists():
        raise PkiError(f"a PKI already exists in {directory}")
    clean_domains = [safe_domain(d) for d in domains]
    clean_boxes = [safe_address(m) for m in mailboxes]
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    now = _now()
    root_key = _new_key(key_size)
    root = _ca_cert(_ROOT_CN, root_key, None, root_key, None, now, 20)
    inter_key = _new_key(key_size)
    inter = _ca_cert(_INTERMEDIATE_CN, inter_key, root, root_key, 0, now, 10)
    _write_key(paths.root_key, root_key, passphrase)
    _write_key(paths.intermediate_key, inter_key, passphrase)
    _write_cert(paths.intermediate_cert, inter)
    _write_cert(paths.chain, inter, root)
    ca = CertifiedKey(inter, inter_key)
    _write_crl(paths, ca, [], 1, now)
    for d in clean_domains:
        _issue_tls(ca, paths, d, passphrase, key_size, now)
    for m in clean_boxes:
        _issue_mailbox(ca, paths, m, passphrase, key_size, now, _LEAF_VALIDITY, "ORG")
    _write_cert(paths.root_cert, root)  # last: its presence means "the PKI is complete"
    return paths


def issue(
    directory: Path,
    address: str,
    passphrase: bytes | None,
    *,
    kind: str = "PER",
    key_size: int = 3072,
    now: dt.datetime | None = None,
    validity: dt.timedelta = _LEAF_VALIDITY,
) -> CertifiedKey:
    """Issue an S/MIME certificate for one mailbox (``kind`` PER/ORG/APP goes in the OU).

    Refuses when the address already has a live certificate: revoke it first, so
    that two valid certificates for one address never coexist. ``now`` and
    ``validity`` exist so that tests can make an already expired certificate.
    """
    paths = PkiPaths(directory)
    if kind not in ("PER", "ORG", "APP", "CAB"):
        raise PkiError(f"unknown mailbox kind {kind!r}")
    cert_path, _ = paths.mailbox(address)
    if cert_path.exists():
        raise PkiError(f"{safe_address(address)} already has a certificate (revoke it first)")
    ca = _issuer(paths, passphrase)
    return _issue_mailbox(ca, paths, address, passphrase, key_size, now or _now(), validity, kind)


def revoke(
    directory: Path,
    address: str,
    passphrase: bytes | None = None,
    *,
    reason: x509.ReasonFlags = x509.ReasonFlags.unspecified,
) -> int:
    """Put the mailbox certificate on the CRL (re-signed, number + 1) and move its files to
    ``revoked/``; return the revoked serial number. The key is kept, not deleted: mail
    encrypted to it before revocation must stay readable."""
    paths = PkiPaths(directory)
    cert_path, key_path = paths.mailbox(address)
    if not cert_path.is_file():
        raise PkiError(f"{safe_address(address)} has no certificate")
    ca = _issuer(paths, passphrase)
    cert = load_certificate(cert_path)
    old = load_crl(paths.crl)
    if not old.is_signature_valid(ca.key.public_key()):
        raise PkiError(f"{paths.crl}: not signed by the intermediate CA")
    try:
        number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    except x509.ExtensionNotFound:
        number = 1
    now = _now() + dt.timedelta(minutes=5)
    revoked = [r for r in old if r.serial_number != cert.serial_number]
    revoked.append(
        x509.RevokedCertificateBuilder()
        .serial_number(cert.serial_number)
        .revocation_date(now.replace(microsecond=0))
        .add_extension(x509.CRLReason(reason), critical=False)
        .build()
    )
    _write_crl(paths, ca, revoked, number, now)
    new_cert, new_key = paths.revoked(address, cert.serial_number)
    new_cert.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(cert_path, new_cert)
    if key_path.exists():
        shutil.move(key_path, new_key)
    return cert.serial_number
