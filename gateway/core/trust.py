"""The gateway's S/MIME trust and identities, read from ``DATA_DIR/pki`` and ``[smime]``.

This module owns where trust comes from: trusted roots, intermediates and CRL
files (CRLs re-read when a file changes, so ``pli pki revoke`` reaches a
running server), the keys of the served non-personal mailboxes (ORG/APP/CAB:
a person's key stays with the person), and the notary identity
``notary@<hostname>`` that signs receipts. It reads files only; it must never
write a key except through ``gateway.smime.pki.issue`` (``ensure_notary``),
never load a personal (PER) key, and never log key material or passphrases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.base import events
from gateway.base.config import Settings, read_secret
from gateway.base.errors import ConfigError
from gateway.smime import (
    CertifiedKey,
    PkiError,
    PkiPaths,
    issue,
    load_certificates,
    load_crl,
    load_identity,
)
from gateway.smime.hsm import HsmError, Token
from gateway.smime.pki import safe_address
from gateway.smime.trustcache import ChainCache

__all__ = [
    "TrustStore",
    "ensure_notary",
    "load_keys",
    "load_notary",
    "load_trust",
    "notary_address",
    "open_token",
    "read_passphrase",
]

log = structlog.get_logger("pli.trust")


class TrustStore:
    """Trusted roots and intermediates (replaced whole on SIGHUP) and CRLs (re-read on change)."""

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        intermediates: Sequence[x509.Certificate],
        crl_files: Sequence[Path],
    ) -> None:
        self.roots = tuple(roots)
        self.intermediates = tuple(intermediates)
        self._crl_files = tuple(crl_files)
        self._crls: list[x509.CertificateRevocationList] = []
        self._stamp: tuple[tuple[int, int], ...] = ()
        # Paths built and CRL signatures checked lately (never revocation status).
        self.chain_cache = ChainCache()

    def crls(self) -> list[x509.CertificateRevocationList]:
        """The CRLs, re-read when a file's mtime or size changed (one stat per file)."""
        stamp = []
        for path in self._crl_files:
            try:
                st = path.stat()
                stamp.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamp.append((0, 0))
        if tuple(stamp) != self._stamp:
            crls = []
            for path in self._crl_files:
                try:
                    crls.append(load_crl(path))
                except (OSError, PkiError):
                    log.warning(events.SMIME_CRL_UNREADABLE, file=path.name)
            self._crls, self._stamp = crls, tuple(stamp)
        return self._crls

    def is_revoked(self, cert: x509.Certificate, at: dt.datetime) -> bool:
        """RFC 5280 §6.3: listed on a CRL its issuer signed (issuers known to us only)."""
        issuers = [c for c in (*self.intermediates, *self.roots) if c.subject == cert.issuer]
        for crl in self.crls():
            if crl.issuer != cert.issuer:
                continue
            if not any(
                crl.is_signature_valid(i.public_key())  # type: ignore[arg-type]
                for i in issuers
            ):
                continue
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None and entry.revocation_date_utc <= at:
                return True
        return False


def notary_address(settings: Settings) -> str:
    """``notary@<hostname>``; the first served domain when the hostname is not a DNS name."""
    for domain in (settings.hostname, *settings.domains):
        try:
            return safe_address(f"notary@{domain}")
        except PkiError:
            continue
    raise ConfigError("invalid configuration key 'hostname': no domain for the notary")


def ensure_notary(
    settings: Settings, passphrase: bytes | None = None, *, key_size: int = 3072
) -> bool:
    """Issue the notary certificate from the development PKI if it has none; True if issued.

    An APP-kind S/MIME certificate (emailProtection), because receipts are CMS
    SignedData that ``pli vault proof`` checks with the S/MIME verifier; the TLS
    key would mix a transport identity into 20-year evidence.
    """
    paths = PkiPaths(settings.pki_dir())
    address = notary_address(settings)
    if not paths.root_cert.is_file() or paths.mailbox(address)[0].is_file():
        return False
    # The CA's passphrase: given (pli pki init --passphrase-file) or smime.passphrase_file.
    issue(
        paths.directory,
        address,
        passphrase or read_passphrase(settings),
        kind="APP",
        key_size=key_size,
    )
    return True


def read_passphrase(settings: Settings) -> bytes | None:
    if not settings.smime.passphrase_file:
        return None
    try:
        raw = Path(settings.smime.passphrase_file).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"invalid configuration key 'smime.passphrase_file': cannot read it: {exc.strerror}"
        ) from None
    return raw.splitlines()[0] if raw.strip() else None


def load_trust(settings: Settings) -> TrustStore:
    """Roots, intermediates and CRL files from ``DATA_DIR/pki`` and ``[smime]``."""
    paths = PkiPaths(settings.pki_dir())
    s = settings.smime

    def certs(own: Path, extra: Sequence[str], key: str) -> list[x509.Certificate]:
        out = load_certificates(own) if own.is_file() else []
        for name in extra:
            try:
                out += load_certificates(Path(name))
            except (OSError, PkiError) as exc:
                raise ConfigError(
                    f"invalid configuration key 'smime.{key}': cannot load "
                    f"{name}: {type(exc).__name__}"
                ) from None
        return out

    roots = certs(paths.root_cert, s.extra_roots, "extra_roots")
    inters = certs(paths.intermediate_cert, s.extra_intermediates, "extra_intermediates")
    crl_files = [paths.crl, *(Path(c) for c in s.crl_files)]
    return TrustStore(roots, inters, crl_files)


def _kind(cert: x509.Certificate) -> str:
    ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(ou[0].value) if ou else ""


def open_token(settings: Settings) -> Token | None:
    """The HSM holding mailbox and notary keys, when ``smime.pkcs11_module`` is set."""
    s = settings.smime
    if not s.pkcs11_module:
        return None
    pin = read_secret(s.pkcs11_pin, s.pkcs11_pin_file, "smime.pkcs11_pin", "PLI_SMIME__PKCS11_PIN")
    try:
        return Token(s.pkcs11_module, s.pkcs11_token_label, pin)
    except HsmError as exc:
        raise ConfigError(f"smime.pkcs11: {exc.text}") from None


def _identity(
    pem: Path, key_path: Path, passphrase: bytes | None, token: Token | None
) -> CertifiedKey | None:
    """The token's key for this certificate if it holds one, else the key file, else None."""
    if token is not None:
        certs = load_certificates(pem)
        public = certs[0].public_key()
        if isinstance(public, rsa.RSAPublicKey):
            key = token.key(pem.name[:-4], public)
            if key is not None:
                return CertifiedKey(
                    certs[0], key, tuple(c for c in certs[1:] if c.issuer != c.subject)
                )
    if not key_path.is_file():
        return None
    return load_identity(pem, key_path, passphrase)


def load_keys(
    settings: Settings, notary: str, token: Token | None = None
) -> dict[str, CertifiedKey]:
    """The identities of the served non-personal mailboxes the gateway holds keys for."""
    paths = PkiPaths(settings.pki_dir())
    folder = paths.directory / "mailboxes"
    served = {d.lower() for d in settings.domains}
    passphrase = read_passphrase(settings)
    keys: dict[str, CertifiedKey] = {}
    if not folder.is_dir():
        return keys
    for pem in sorted(folder.glob("*.pem")):
        address = pem.name[:-4]
        if address == notary or address.rpartition("@")[2] not in served:
            continue
        try:
            ident = _identity(pem, pem.with_suffix(".key"), passphrase, token)
        except PkiError as exc:
            raise ConfigError(
                f"invalid configuration key 'smime.passphrase_file': {exc.text}"
            ) from None
        # A person's key is theirs (their card, their client): never held here.
        if ident is not None and _kind(ident.cert) != "PER":
            keys[address] = ident
    return keys


def load_notary(
    settings: Settings, address: str, token: Token | None = None
) -> CertifiedKey | None:
    cert, key = PkiPaths(settings.pki_dir()).mailbox(address)
    try:
        ident = _identity(cert, key, read_passphrase(settings), token) if cert.is_file() else None
    except PkiError as exc:
        raise ConfigError(f"notary identity: {exc.text}") from None
    if ident is None:
        log.warning(events.SMIME_NOTARY_MISSING, reason="no notary certificate; run pli init")
    return ident
