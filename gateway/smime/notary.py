"""Notarisation receipts: a detached CMS SignedData proving pli held these exact bytes at
the moment it received them (the roadmap's *notarisation des événements*).

This module owns the receipt format: SignedData over the stored bytes, signed
attributes contentType, messageDigest, signingTime = the receipt time (RFC 5652
§11.3, second precision, what ``openssl cms -verify`` and every CMS tool show)
and ``id-pli-receivedAt`` (a GeneralizedTime with microseconds, under a UUID
OID arc, RFC 4122 / ITU-T X.667 ``2.25``) so that the receipt time recorded in
the audit trail can be matched exactly. Receipts verify with ``openssl cms
-verify -binary -inform DER -content FILE -CAfile CHAIN``. It must never sign
bytes other than those stored, never take the time from the message itself,
and never log content.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import core
from cryptography import x509

from gateway.smime.cms import (
    DEFAULT_MAX_SIZE,
    MalformedCms,
    SmimeError,
    malformed_on_error,
    parse_content_info,
)
from gateway.smime.pki import PrivateKey
from gateway.smime.signing import attribute_der, signed_data
from gateway.smime.verification import (
    Reason,
    RevocationCheck,
    VerificationResult,
    verify_signed_data,
)

__all__ = ["RECEIVED_AT_OID", "Notarisation", "notarise", "verify_notarisation"]

# id-pli-receivedAt: 2.25 + a UUID (b44648aa-ad50-453c-af1b-d0aae42102bd) needs no registry.
RECEIVED_AT_OID = "2.25.239625973877299333129262058562927002301"


@dataclass(frozen=True, slots=True)
class Notarisation:
    """A checked receipt: the verification outcome and the receipt time it attests."""

    result: VerificationResult
    received_at: dt.datetime | None


def notarise(
    data: bytes,
    received_at: dt.datetime,
    cert: x509.Certificate,
    key: PrivateKey,
    chain: Sequence[x509.Certificate] = (),
) -> bytes:
    """A DER detached SignedData over ``data`` attesting ``received_at`` (aware datetime).

    Signing runs on the caller's thread: for large bodies call it in a worker
    thread (the digest is the only part that grows with the size).
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    when = received_at.astimezone(dt.UTC)
    precise = core.GeneralizedTime(when).dump()
    return signed_data(
        data,
        cert,
        key,
        chain,
        detached=True,
        signing_time=when,
        extra_attrs=[attribute_der(RECEIVED_AT_OID, precise)],
        capabilities=False,
    )


def _received_at(result: VerificationResult) -> dt.datetime | None:
    for oid, values in result.signed_attrs:
        if oid == RECEIVED_AT_OID:
            try:
                parsed = core.SetOf.load(values, spec=core.GeneralizedTime)
                when = parsed[0].native
            except (ValueError, TypeError, IndexError) as exc:
                raise MalformedCms("malformed receivedAt attribute") from exc
            return when.astimezone(dt.UTC) if isinstance(when, dt.datetime) else None
    return result.signing_time


def _claimed_time(receipt: bytes, max_size: int) -> dt.datetime | None:
    """The signingTime the (not yet verified) receipt claims: when to judge its certificate."""
    try:
        info = parse_content_info(receipt, max_size=max_size)
        with malformed_on_error("receipt"):
            for si in info["content"]["signer_infos"]:
                for attr in si["signed_attrs"]:
                    if attr["type"].native == "signing_time" and len(attr["values"]) == 1:
                        when = attr["values"][0].native
                        return when.astimezone(dt.UTC) if isinstance(when, dt.datetime) else None
    except SmimeError:
        return None
    return None


def verify_notarisation(
    receipt: bytes,
    data: bytes,
    trusted_roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
    at_time: dt.datetime | None = None,
    *,
    revocation_check: RevocationCheck | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> Notarisation:
    """Check a receipt against the stored bytes.

    The certificate is judged at ``at_time``, by default at the receipt's own
    signing time: a receipt must stay checkable for the 20-year retention of
    the record, long after the notary certificate expired, as long as it was
    valid (and not revoked before) when it signed.
    """
    when = at_time or _claimed_time(receipt, max_size)
    if when is None:
        return Notarisation(
            VerificationResult(False, Reason.MALFORMED, detail="receipt without signingTime"), None
        )
    result = verify_signed_data(
        receipt,
        trusted_roots,
        intermediates,
        crls,
        when,
        content=data,
        max_size=max_size,
        revocation_check=revocation_check,
    )
    try:
        received = _received_at(result) if result.ok else None
    except MalformedCms as exc:
        return Notarisation(VerificationResult(False, Reason.MALFORMED, detail=exc.text), None)
    return Notarisation(result, received)
