"""S/MIME 4.0 and CMS for pli: the development PKI, signing, verifying, (de)enveloping and
notarisation receipts (RFC 8551, RFC 5652, RFC 5083/5084).

The package is a pure library: bytes and certificates in, bytes or typed
results out. It owns no configuration, no event loop and no state; callers
(``gateway/core``) decide when to sign, encrypt or notarise and run the work in
a thread pool for large bodies. It must never log keys or content.
"""

from __future__ import annotations

from gateway.smime.cms import (
    CmsTooLarge,
    DecryptionFailed,
    MalformedCms,
    NotForUs,
    SmimeError,
    UnsupportedCms,
    canonicalize,
)
from gateway.smime.envelope import ContentCipher, KeyTransport, decrypt, encrypt, envelope
from gateway.smime.mime import SignedParts, SmimeKind, classify, split_signed
from gateway.smime.notary import Notarisation, notarise, verify_notarisation
from gateway.smime.pki import (
    CertifiedKey,
    PkiError,
    PkiPaths,
    init_pki,
    issue,
    load_certificate,
    load_certificates,
    load_crl,
    load_identity,
    load_private_key,
    revoke,
)
from gateway.smime.signing import sign, signed_data
from gateway.smime.verification import (
    Reason,
    Revocation,
    RevocationCheck,
    VerificationResult,
    verify,
    verify_signed_data,
)

__all__ = [
    "CertifiedKey",
    "CmsTooLarge",
    "ContentCipher",
    "DecryptionFailed",
    "KeyTransport",
    "MalformedCms",
    "NotForUs",
    "Notarisation",
    "PkiError",
    "PkiPaths",
    "Reason",
    "Revocation",
    "RevocationCheck",
    "SignedParts",
    "SmimeError",
    "SmimeKind",
    "UnsupportedCms",
    "VerificationResult",
    "canonicalize",
    "classify",
    "decrypt",
    "encrypt",
    "envelope",
    "init_pki",
    "issue",
    "load_certificate",
    "load_certificates",
    "load_crl",
    "load_identity",
    "load_private_key",
    "notarise",
    "revoke",
    "sign",
    "signed_data",
    "split_signed",
    "verify",
    "verify_notarisation",
    "verify_signed_data",
]
