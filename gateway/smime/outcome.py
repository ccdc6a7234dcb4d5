"""What a verification concludes: the result type, the stable reason codes, the OCSP hook type.

Shared by the verifier (``gateway.smime.verification``, which re-exports all of
it) and the certificate-path checks (``gateway.smime.certpath``). ``Failed``
is internal to the verifier: raised inside it and always turned into a
not-ok ``VerificationResult`` before returning, never seen by callers.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

__all__ = ["Failed", "Reason", "Revocation", "RevocationCheck", "VerificationResult"]


class Reason(enum.StrEnum):
    """Why a verification failed: stable codes for audit entries and logs."""

    MALFORMED = "malformed"
    TOO_LARGE = "too-large"
    UNSUPPORTED = "unsupported-algorithm"
    NOT_SIGNED = "not-signed"
    NO_CONTENT = "no-content"
    NO_SIGNER = "no-signer"
    SIGNER_CERT_MISSING = "signer-certificate-missing"
    CONTENT_TYPE_MISMATCH = "content-type-mismatch"
    DIGEST_MISMATCH = "digest-mismatch"
    BAD_SIGNATURE = "bad-signature"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    WRONG_USAGE = "wrong-usage"
    UNTRUSTED = "untrusted"
    REVOKED = "revoked"
    REVOCATION_UNKNOWN = "revocation-unknown"


class Revocation(enum.StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


# The OCSP hook (RFC 6960): given (certificate, its issuer, validation time), say its status.
RevocationCheck = Callable[[x509.Certificate, x509.Certificate, dt.datetime], Revocation]


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The outcome for one signed message; ``reason`` is None exactly when ``ok``.

    ``content`` is what was signed (the first part of a multipart/signed, or the
    encapsulated content); ``signed_attrs`` maps each signed attribute OID to
    the DER of its values (notarisation reads its own attribute from there);
    ``revocation`` says how the signer's status was established.
    """

    ok: bool
    reason: Reason | None = None
    signer_addresses: tuple[str, ...] = ()
    signer_subject: str | None = None
    signing_time: dt.datetime | None = None
    content: bytes = b""
    signed_attrs: tuple[tuple[str, bytes], ...] = ()
    revocation: str = "unchecked"
    detail: str = ""


class Failed(Exception):
    """A verification outcome other than ok, on its way to a ``VerificationResult``."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.detail = detail
