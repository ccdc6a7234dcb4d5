"""S/MIME on the message path: decrypt and verify what arrives, sign and encrypt what
leaves, notarise what was received (RFC 8551, RFC 5652, RFC 7281).

This module owns the policy of the crypto on a message: which key decrypts
(a local recipient's, when the gateway holds it), what "verified" means and
how it is shown (an Authentication-Results field, ``gateway/core/evidence.py``),
which identity signs outbound mail (the sender's, else its organisation's),
when to encrypt (force / opportunistic / none) and what receipts cover.
Identities and trust come from ``gateway/core/trust.py``; ``gateway/core/
ingest.py`` calls it between spool and commit; every crypto call runs in a
worker thread. It must never raise on untrusted input (a broken CMS is a
``fail``, not an exception), never log or audit content, keys or attachment
names, and never hand a personal mailbox's key to anything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.message
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa

from directory.base import Directory, DirectoryUnavailable
from gateway.base import events
from gateway.base.config import Settings
from gateway.base.errors import ConfigError, OutboundNotSecured, Unavailable
from gateway.core import evidence
from gateway.core.evidence import SmimeOutcome
from gateway.core.trust import (
    TrustStore,
    load_keys,
    load_notary,
    load_trust,
    notary_address,
    open_token,
)
from gateway.smime import (
    CertifiedKey,
    DecryptionFailed,
    NotForUs,
    SmimeError,
    SmimeKind,
    UnsupportedCms,
    classify,
    decrypt,
    encrypt,
    notarise,
    sign,
    verify,
)
from gateway.smime.hsm import HsmError, Token
from policies import reasons
from policies.rules import EncryptionMode

log = structlog.get_logger("pli.secure")

__all__ = ["CertificateCheck", "Receipt", "SecureMail", "SecureResult"]

_MAX_LAYERS = 4  # sign-then-encrypt, or a triple wrap (RFC 2634): no deeper nesting
_STRENGTH = {EncryptionMode.NONE: 0, EncryptionMode.OPPORTUNISTIC: 1, EncryptionMode.FORCE: 2}


@dataclass(frozen=True, slots=True)
class SecureResult:
    """What mailboxes show (``presented``), the received bytes when they differ, and why."""

    presented: bytes
    original: bytes | None
    outcome: SmimeOutcome


@dataclass(frozen=True, slots=True)
class Receipt:
    kind: str  # evidence.RECEIPT | RECEIPT_ORIGINAL | RECEIPT_PART
    part: int | None
    der: bytes


@dataclass(frozen=True, slots=True)
class CertificateCheck:
    """The certificates usable to encrypt to an address, or why there is none."""

    certificates: tuple[x509.Certificate, ...]
    problem: str = ""  # "" | "no-certificate" | "revoked" | "expired" | "unusable"


class SecureMail:
    """The S/MIME and notarisation service of one gateway (built by ``gateway/app/services.py``)."""

    def __init__(
        self,
        hostname: str,
        trust: TrustStore,
        keys: dict[str, CertifiedKey],
        notary: CertifiedKey | None,
        directory: Directory,
        token: Token | None = None,
    ) -> None:
        self.hostname = hostname
        self.trust = trust
        self._keys = keys
        self.notary = notary
        self._directory = directory
        self._token = token

    @classmethod
    def from_settings(cls, settings: Settings, directory: Directory) -> SecureMail:
        """Load trust, mailbox keys and the notary (file I/O: call it in a thread)."""
        notary = notary_address(settings)
        token = open_token(settings)  # mailbox and notary keys in an HSM, if configured
        return cls(
            settings.hostname,
            load_trust(settings),
            load_keys(settings, notary, token),
            load_notary(settings, notary, token),
            directory,
            token,
        )

    def reload(self, settings: Settings) -> bool:
        """Re-read trust anchors, CRL list, mailbox keys and the notary (SIGHUP; file I/O:
        call it in a thread). A certificate issued or renewed (``pli pki issue``) is used
        without a restart; on any error everything in use stays, and the error is logged.
        """
        notary_name = notary_address(settings)
        try:
            trust = load_trust(settings)
            keys = load_keys(settings, notary_name, self._token)
            notary = load_notary(settings, notary_name, self._token)
        except (ConfigError, HsmError, OSError) as exc:
            log.error(events.SMIME_RELOAD_FAILED, error=str(exc))
            return False
        # Each attribute is swapped whole: a message in flight sees the old set or the new.
        self.trust, self._keys = trust, keys
        if notary is not None:
            self.notary = notary
        log.info(events.SMIME_RELOADED, mailbox_keys=len(keys), notary=self.notary is not None)
        return True

    # ------------------------------------------------------------ inbound

    async def inbound(self, data: bytes, recipients: Sequence[str]) -> SecureResult:
        """Decrypt (with a recipient's key pli holds) and verify; never raises on bad CMS."""
        head, _ = evidence.split_message(data)
        lowered = head.lower()
        if b"pkcs7" not in lowered and b"authentication-results" not in lowered:
            return SecureResult(data, None, SmimeOutcome())  # the common case: no thread hop
        keys = [self._keys[r.lower()] for r in recipients if r.lower() in self._keys]
        return await asyncio.to_thread(self._inbound, data, keys)

    def _inbound(self, data: bytes, keys: list[CertifiedKey]) -> SecureResult:
        head, body = evidence.split_message(data)
        head, forged = evidence.strip_forged_results(head, self.hostname)
        message = head + (b"\r\n" if head.endswith(b"\r\n") else b"\n") + body
        outer, entity = evidence.outer_and_entity(message)
        outcome, inner = self._unwrap(entity, keys, message)
        if outcome.result == "none" and inner is None and not forged:
            return SecureResult(data, None, outcome)
        if outcome.result == "pass" and outcome.signer:
            outcome = _with_from(outcome, outer)
        # RFC 8601 §5: our own result first; the received bytes stay in the vault.
        first = [
            evidence.authentication_results(self.hostname, outcome),
            b"X-PLI-Original: kept\r\n",
        ]
        if inner is None:  # nothing unwrapped: the message as received, headed
            presented = b"".join(first) + message
        else:
            presented = evidence.rewrap(outer, inner, first)
        return SecureResult(presented, data, outcome)

    def _unwrap(
        self, entity: bytes, keys: list[CertifiedKey], message: bytes
    ) -> tuple[SmimeOutcome, bytes | None]:
        """Peel encryption and signature layers; (outcome, unwrapped entity or None)."""
        decrypted = False
        changed: bytes | None = None
        for _ in range(_MAX_LAYERS):
            try:
                kind = classify(entity)
            except SmimeError:
                return SmimeOutcome("fail", "malformed", decrypted=decrypted), changed
            if kind is SmimeKind.NONE:
                return SmimeOutcome(
                    "none", "decrypted, not signed" if decrypted else "", decrypted=decrypted
                ), changed
            if kind in (SmimeKind.ENVELOPED, SmimeKind.AUTH_ENVELOPED):
                if not keys:
                    return SmimeOutcome(
                        "neutral", "encrypted, key not held by the gateway", decrypted=decrypted
                    ), changed
                try:
                    entity = _decrypt_any(entity, keys)
                except NotForUs:
                    return SmimeOutcome(
                        "neutral",
                        "encrypted to a key the gateway does not hold",
                        decrypted=decrypted,
                    ), changed
                except DecryptionFailed:
                    return SmimeOutcome("fail", "decryption-failed", decrypted=decrypted), changed
                except UnsupportedCms:
                    return SmimeOutcome(
                        "fail", "unsupported-algorithm", decrypted=decrypted
                    ), changed
                except SmimeError:
                    return SmimeOutcome("fail", "malformed", decrypted=decrypted), changed
                decrypted, changed = True, entity
                continue
            if kind is SmimeKind.COMPRESSED:
                return SmimeOutcome(
                    "neutral", "compressed-data not supported", decrypted=decrypted
                ), changed
            result = verify(
                entity,
                self.trust.roots,
                self.trust.intermediates,
                self.trust.crls(),
                chain_cache=self.trust.chain_cache,
            )
            if not result.ok:
                reason = result.reason.value if result.reason else "malformed"
                return SmimeOutcome("fail", reason, decrypted=decrypted), changed
            # RFC 8551 §3.5: once verified, the signed content is what the user reads.
            entity, changed = result.content, result.content
            signer = result.signer_addresses[0] if result.signer_addresses else ""
            try:
                if classify(entity) in (SmimeKind.ENVELOPED, SmimeKind.AUTH_ENVELOPED) and keys:
                    continue  # encrypt-then-sign: one more layer
            except SmimeError:
                pass
            return SmimeOutcome(
                "pass", "", signer, decrypted=decrypted, revocation=result.revocation
            ), changed
        return SmimeOutcome("fail", "too-many-layers", decrypted=decrypted), changed

    # ------------------------------------------------------------ outbound

    def mode(self, modes: Sequence[EncryptionMode]) -> EncryptionMode:
        """The strictest of the sender's and the recipients' modes (force > opportunistic)."""
        return max(modes, key=lambda m: _STRENGTH[m], default=EncryptionMode.NONE)

    async def check_recipient(self, address: str) -> CertificateCheck:
        """The recipient's usable encryption certificates from the directory (RFC 8550 §4).

        Raises ``DirectoryUnavailable`` like every directory call (the caller defers).
        """
        ders = await self._directory.certificates(address)
        if not ders:
            return CertificateCheck((), "no-certificate")
        # Parsing, and the CRL check (a stat, maybe a re-read and a signature check),
        # stay off the event loop.
        return await asyncio.to_thread(self._check_certificates, ders)

    def _check_certificates(self, ders: Sequence[bytes]) -> CertificateCheck:
        now = dt.datetime.now(dt.UTC)
        usable: list[x509.Certificate] = []
        problems: list[str] = []
        for der in ders:
            try:  # the directory is input: a mangled certificate must not crash RCPT
                cert = x509.load_der_x509_certificate(der)
                key = cert.public_key()
            except (ValueError, x509.InvalidVersion, UnsupportedAlgorithm):
                problems.append("unusable")
                continue
            if not isinstance(key, rsa.RSAPublicKey):
                problems.append("unusable")  # key transport needs RSA (RFC 8551 §2.3)
            elif now > cert.not_valid_after_utc or now < cert.not_valid_before_utc:
                problems.append("expired")  # RFC 5280 §4.1.2.5
            elif self.trust.is_revoked(cert, now):
                problems.append("revoked")
            else:
                usable.append(cert)
        if usable:
            return CertificateCheck(tuple(usable))
        for why in ("revoked", "expired", "unusable"):
            if why in problems:
                return CertificateCheck((), why)
        return CertificateCheck((), "unusable")

    def signer_for(self, sender: str) -> CertifiedKey | None:
        """The sender's own identity if held, else the first (by address) non-personal
        mailbox of the same domain: the organisation vouches for its staff's mail."""
        sender = sender.lower()
        if sender in self._keys:
            return self._keys[sender]
        domain = sender.rpartition("@")[2]
        for address in sorted(self._keys):
            if address.rpartition("@")[2] == domain:
                return self._keys[address]
        return None

    async def outbound(
        self, data: bytes, sender: str, remote_recipients: Sequence[str], mode: EncryptionMode
    ) -> bytes | None:
        """The signed (and, when every recipient has a certificate, encrypted) copy for other
        operators; None when the message leaves unchanged (mode none, nothing to sign)."""
        if mode is EncryptionMode.NONE:
            return None
        certs: list[x509.Certificate] = []
        try:
            for rcpt in remote_recipients:
                check = await self.check_recipient(rcpt)
                if not check.certificates:
                    certs = []
                    if mode is EncryptionMode.FORCE:
                        raise OutboundNotSecured
                    break
                certs += check.certificates
        except DirectoryUnavailable as exc:
            raise Unavailable(
                "Directory unavailable, try again later", reason=reasons.DIRECTORY_UNAVAILABLE
            ) from exc
        signer = self.signer_for(sender)
        if signer is None and not certs:
            return None
        return await asyncio.to_thread(_protect, data, signer, certs)

    # ------------------------------------------------------------ notarisation

    async def notarise(self, data: bytes, received_at: dt.datetime) -> bytes | None:
        """A DER receipt over ``data`` (None without a notary identity)."""
        n = self.notary
        if n is None:
            return None
        return await asyncio.to_thread(notarise, data, received_at, n.cert, n.key, n.chain)

    async def receipts(
        self,
        main: bytes,
        original: bytes | None,
        received_at: dt.datetime,
        parsed: email.message.Message | None = None,
    ) -> list[Receipt]:
        """Receipts over the main object, the original (if kept) and each attachment
        (``parsed``: the tree of ``main`` when the caller has it already)."""
        n = self.notary  # read once: a reload may replace it while the thread runs
        if n is None:
            return []
        return await asyncio.to_thread(self._receipts, n, main, original, received_at, parsed)

    @staticmethod
    def _receipts(
        n: CertifiedKey,
        main: bytes,
        original: bytes | None,
        received_at: dt.datetime,
        parsed: email.message.Message | None,
    ) -> list[Receipt]:
        out = [Receipt(evidence.RECEIPT, None, notarise(main, received_at, n.cert, n.key, n.chain))]
        if original is not None:
            out.append(
                Receipt(
                    evidence.RECEIPT_ORIGINAL,
                    None,
                    notarise(original, received_at, n.cert, n.key, n.chain),
                )
            )
        for index, part in evidence.attachment_parts(main, parsed):
            out.append(
                Receipt(
                    evidence.RECEIPT_PART,
                    index,
                    notarise(part, received_at, n.cert, n.key, n.chain),
                )
            )
        return out


def _decrypt_any(entity: bytes, keys: list[CertifiedKey]) -> bytes:
    """Try each held key; NotForUs only if none of them is a recipient."""
    for ident in keys:
        try:
            return decrypt(entity, ident.cert, ident.key)
        except NotForUs:
            continue
    raise NotForUs("no recipient info for a key the gateway holds")


def _with_from(outcome: SmimeOutcome, outer: Sequence[tuple[str, bytes]]) -> SmimeOutcome:
    """RFC 8550 §3: does the From address appear in the signer's certificate?"""
    raw = b"".join(r for n, r in outer if n == "from").decode("utf-8", "replace")
    value = raw.partition(":")[2]
    addresses = {a.lower() for _, a in email.utils.getaddresses([value]) if a}
    return SmimeOutcome(
        outcome.result,
        outcome.reason,
        outcome.signer,
        outcome.signer.lower() in addresses,
        outcome.decrypted,
        outcome.revocation,
    )


def _protect(data: bytes, signer: CertifiedKey | None, certs: Sequence[x509.Certificate]) -> bytes:
    """RFC 8551 §3.1: sign the MIME entity, then encrypt it; the outer fields stay clear."""
    outer, entity = evidence.outer_and_entity(data)
    if signer is not None:
        entity = sign(entity, signer.cert, signer.key, signer.chain)
    if certs:
        entity = encrypt(entity, certs)
    return evidence.rewrap(outer, entity)
