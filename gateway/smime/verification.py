"""Verifying CMS SignedData and S/MIME signed messages (cryptography has no public CMS verify).

This module owns every check between "bytes claiming a signature" and "this
mailbox signed this content": the messageDigest against the content, the
signature over the DER of the signed attributes (RSA PKCS#1 v1.5, RSA-PSS,
ECDSA, Ed25519), the signer certificate's validity and usage, the chain to a
trusted root (``cryptography.x509.verification`` with an emailProtection
extension policy) and revocation by CRL, with a hook for OCSP. It returns a
``VerificationResult`` with a stable reason code; it must never raise on
untrusted input, never report ``ok`` without a trusted chain, and never log
content.
"""

from __future__ import annotations

import datetime as dt
import enum
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from gateway.smime.cms import (
    DEFAULT_MAX_SIZE,
    CmsTooLarge,
    MalformedCms,
    SmimeError,
    UnsupportedCms,
    canonicalize,
    content_bytes,
    hash_by_name,
    hash_for,
    malformed_on_error,
    parse_content_info,
    signed_attrs_der,
)
from gateway.smime.mime import SmimeKind, classify, pkcs7_mime_payload, split_signed

__all__ = [
    "Reason",
    "Revocation",
    "RevocationCheck",
    "VerificationResult",
    "verify",
    "verify_signed_data",
]


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


class _Fail(Exception):
    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- signature


def _verify_signature(public: Any, sig_alg: Any, digest: hashes.HashAlgorithm,
                      signature: bytes, data: bytes) -> None:
    name = sig_alg["algorithm"].native
    try:
        if name == "rsassa_pss":
            # RFC 4056 §3: hash, MGF1 hash and salt length come from the parameters.
            p = sig_alg["parameters"]
            h = hash_for(p["hash_algorithm"])
            mgf = p["mask_gen_algorithm"]
            if mgf["algorithm"].native != "mgf1":
                raise UnsupportedCms("PSS mask generation function")
            mgf_h = hash_for(mgf["parameters"])
            if not isinstance(public, rsa.RSAPublicKey):
                raise _Fail(Reason.BAD_SIGNATURE, "key type does not match the algorithm")
            public.verify(signature, data,
                          padding.PSS(padding.MGF1(mgf_h), p["salt_length"].native), h)
        elif name == "rsassa_pkcs1v15" or name.endswith("_rsa"):
            if name != "rsassa_pkcs1v15":  # sha256_rsa …: the hash is in the OID (RFC 5754 §3.2)
                digest = hash_by_name(name.split("_")[0])
            if not isinstance(public, rsa.RSAPublicKey):
                raise _Fail(Reason.BAD_SIGNATURE, "key type does not match the algorithm")
            public.verify(signature, data, padding.PKCS1v15(), digest)
        elif name == "ecdsa" or name.endswith("_ecdsa"):
            if name != "ecdsa":  # RFC 5753 §7.1.3: ecdsa-with-SHA256 …
                digest = hash_by_name(name.split("_")[0])
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise _Fail(Reason.BAD_SIGNATURE, "key type does not match the algorithm")
            public.verify(signature, data, ec.ECDSA(digest))
        elif name == "ed25519":  # RFC 8419 §3.1
            if not isinstance(public, ed25519.Ed25519PublicKey):
                raise _Fail(Reason.BAD_SIGNATURE, "key type does not match the algorithm")
            public.verify(signature, data)
        else:
            raise UnsupportedCms(f"signature algorithm {name}")
    except InvalidSignature:
        raise _Fail(Reason.BAD_SIGNATURE) from None


# ---------------------------------------------------------------- certificates


def _check_usage(cert: x509.Certificate) -> None:
    """RFC 8550 §4.4.2/§4.4.4: keyUsage, if present, allows signing; EKU, if present,
    includes emailProtection (or anyExtendedKeyUsage)."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not (ku.digital_signature or ku.content_commitment):
            raise _Fail(Reason.WRONG_USAGE, "keyUsage forbids signing")
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku and \
                ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
            raise _Fail(Reason.WRONG_USAGE, "extendedKeyUsage lacks emailProtection")
    except x509.ExtensionNotFound:
        pass


def _eku_validator(policy: Policy, cert: x509.Certificate,
                   ext: x509.ExtendedKeyUsage | None) -> None:
    if ext is not None and ExtendedKeyUsageOID.EMAIL_PROTECTION not in ext and \
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in ext:
        raise ValueError("extendedKeyUsage lacks emailProtection")


def _chain(leaf: x509.Certificate, pool: list[x509.Certificate],
           roots: Sequence[x509.Certificate], at_time: dt.datetime) -> list[x509.Certificate]:
    if not roots:
        raise _Fail(Reason.UNTRUSTED, "no trusted roots configured")
    # The client verifier's own EKU rule wants clientAuth; S/MIME wants emailProtection,
    # so the end-entity policy is replaced (cryptography >= 45 ExtensionPolicy).
    ee = (ExtensionPolicy.permit_all()
          .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku_validator))
    verifier = (PolicyBuilder().store(Store(list(roots))).time(at_time)
                .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
                .build_client_verifier())
    try:
        return list(verifier.verify(leaf, pool).chain)
    except VerificationError as exc:
        raise _Fail(Reason.UNTRUSTED, str(exc)[:200]) from None


def _revocation(chain: list[x509.Certificate], crls: Sequence[x509.CertificateRevocationList],
                at_time: dt.datetime, hook: RevocationCheck | None) -> str:
    """RFC 5280 §6.3, simplified: a CRL counts when its issuer signed it. A certificate
    revoked at or before ``at_time`` fails; the leaf's status decides what is reported."""
    leaf_status = Revocation.UNKNOWN
    source = "unchecked"
    for i, cert in enumerate(chain[:-1]):
        issuer = chain[i + 1]
        status = Revocation.UNKNOWN
        for crl in crls:
            if crl.issuer != issuer.subject or not crl.is_signature_valid(
                    issuer.public_key()):  # type: ignore[arg-type]
                continue
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None and entry.revocation_date_utc <= at_time:
                raise _Fail(Reason.REVOKED, f"serial {cert.serial_number:x}")
            fresh = crl.next_update_utc is None or crl.next_update_utc >= at_time
            if fresh and crl.last_update_utc <= at_time:
                status = Revocation.GOOD
        if status is Revocation.UNKNOWN and hook is not None:
            status = hook(cert, issuer, at_time)
            if status is Revocation.REVOKED:
                raise _Fail(Reason.REVOKED, f"serial {cert.serial_number:x} (OCSP)")
            source = "ocsp" if i == 0 and status is Revocation.GOOD else source
        elif i == 0 and status is Revocation.GOOD:
            source = "crl"
        if i == 0:
            leaf_status = status
    return source if leaf_status is Revocation.GOOD else "unchecked"


def _addresses(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found = [a.lower() for a in san.get_values_for_type(x509.RFC822Name)]
    except x509.ExtensionNotFound:
        found = []
    if not found:  # RFC 8550 §3: legacy certificates carry it in the subject
        found = [str(a.value).lower() for a in
                 cert.subject.get_attributes_for_oid(x509.oid.NameOID.EMAIL_ADDRESS)]
    return tuple(found)


# ---------------------------------------------------------------- SignedData


def _find_signer(sid: Any, certs: list[x509.Certificate]) -> x509.Certificate:
    from asn1crypto import x509 as asn1_x509

    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            ias = sid.chosen
            if cert.serial_number != ias["serial_number"].native:
                continue
            issuer = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)).issuer
            # Byte equality first; X.520 name comparison (slow: string prep) only if needed.
            if issuer.dump() == ias["issuer"].dump() or issuer == ias["issuer"]:
                return cert
        elif sid.name == "subject_key_identifier":
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            except x509.ExtensionNotFound:
                continue
            if ski.digest == sid.chosen.native:
                return cert
    raise _Fail(Reason.SIGNER_CERT_MISSING)


def _signer(si: Any, content: bytes, content_type: str, certs: list[x509.Certificate],
            ) -> tuple[x509.Certificate, dt.datetime | None, tuple[tuple[str, bytes], ...]]:
    """Check one SignerInfo's digest and signature (RFC 5652 §5.6); return its certificate."""
    digest = hash_for(si["digest_algorithm"])
    cert = _find_signer(si["sid"], certs)
    attrs = si["signed_attrs"]
    signing_time = None
    listed: list[tuple[str, bytes]] = []
    if attrs.contents:
        found: dict[str, Any] = {}
        for a in attrs:
            oid = a["type"].dotted
            listed.append((oid, a["values"].dump()))
            if oid in found:  # RFC 5652 §5.3: each attribute type at most once
                raise MalformedCms(f"signed attribute {oid} twice")
            found[oid] = a["values"]
        ct, md = found.get("1.2.840.113549.1.9.3"), found.get("1.2.840.113549.1.9.4")
        if ct is None or md is None or len(ct) != 1 or len(md) != 1:  # RFC 5652 §5.3
            raise MalformedCms("contentType and messageDigest attributes are required")
        if ct[0].native != content_type:  # RFC 5652 §11.1
            raise _Fail(Reason.CONTENT_TYPE_MISMATCH)
        h = hashes.Hash(digest)
        h.update(content)
        if not hmac.compare_digest(h.finalize(), md[0].native):  # RFC 5652 §11.2
            raise _Fail(Reason.DIGEST_MISMATCH)
        st = found.get("1.2.840.113549.1.9.5")
        if st is not None and len(st) == 1:
            signing_time = st[0].native.astimezone(dt.UTC)
        # RFC 5652 §5.4: the signature covers the attributes with the SET OF tag; the
        # bytes as received first, the DER-sorted re-encoding for sloppy signers second.
        candidates = [b"\x31" + attrs.dump()[1:], signed_attrs_der([a.dump() for a in attrs])]
    else:
        if content_type != "data":  # RFC 5652 §5.3: attributes required for other types
            raise MalformedCms("signed attributes required for non-data content")
        candidates = [content]
    last: _Fail | None = None
    if len(candidates) == 2 and candidates[0] == candidates[1]:
        del candidates[1]
    for data in candidates:
        try:
            _verify_signature(cert.public_key(), si["signature_algorithm"], digest,
                              si["signature"].native, data)
            return cert, signing_time, tuple(listed)
        except _Fail as exc:
            last = exc
    assert last is not None
    raise last


def verify_signed_data(der: bytes, trusted_roots: Sequence[x509.Certificate],
                       intermediates: Sequence[x509.Certificate] = (),
                       crls: Sequence[x509.CertificateRevocationList] = (),
                       at_time: dt.datetime | None = None, *,
                       content: bytes | Sequence[bytes] | None = None,
                       require_revocation: bool = False,
                       revocation_check: RevocationCheck | None = None,
                       max_size: int = DEFAULT_MAX_SIZE) -> VerificationResult:
    """Verify a DER SignedData; ``content`` for a detached one (several candidates may be
    given: the first whose digest matches wins). Never raises on untrusted bytes."""
    when = (at_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    try:
        return _verify(der, trusted_roots, intermediates, crls, when, content,
                       require_revocation, revocation_check, max_size)
    except _Fail as exc:
        return VerificationResult(False, exc.reason, detail=exc.detail)
    except CmsTooLarge:
        return VerificationResult(False, Reason.TOO_LARGE)
    except UnsupportedCms as exc:
        return VerificationResult(False, Reason.UNSUPPORTED, detail=exc.text)
    except SmimeError as exc:
        return VerificationResult(False, Reason.MALFORMED, detail=exc.text)
    except UnsupportedAlgorithm:  # e.g. an embedded certificate with an unknown key type
        return VerificationResult(False, Reason.UNSUPPORTED,
                                  detail="a certificate's key or algorithm is not supported")
    except ValueError:  # cryptography refusing a malformed certificate, key or signature
        return VerificationResult(False, Reason.MALFORMED,
                                  detail="a certificate or key inside is malformed")


def _verify(der: bytes, roots: Sequence[x509.Certificate],
            intermediates: Sequence[x509.Certificate],
            crls: Sequence[x509.CertificateRevocationList], when: dt.datetime,
            content: bytes | Sequence[bytes] | None, require_revocation: bool,
            hook: RevocationCheck | None, max_size: int) -> VerificationResult:
    info = parse_content_info(der, max_size=max_size)
    with malformed_on_error("SignedData"):
        if info["content_type"].native != "signed_data":
            raise _Fail(Reason.NOT_SIGNED)
        sd = info["content"]
        eci = sd["encap_content_info"]
        content_type = eci["content_type"].native
        if not isinstance(eci["content"], core.Void):  # RFC 5652 §5.2: absent when detached
            candidates = [content_bytes(eci["content"])]
        elif content is None:
            raise _Fail(Reason.NO_CONTENT)
        else:
            candidates = [content] if isinstance(content, bytes) else list(content)
        certs: list[x509.Certificate] = []
        for choice in sd["certificates"] or []:
            if choice.name == "certificate":
                try:
                    certs.append(x509.load_der_x509_certificate(choice.chosen.dump()))
                except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
                    continue
        signer_infos = list(sd["signer_infos"])
        if not signer_infos:
            raise _Fail(Reason.NO_SIGNER)
        pool = certs + list(intermediates)
        first: _Fail | None = None
        # RFC 8551 §2.5: a message is verified when any of its signatures is.
        for si in signer_infos:
            for body in candidates:
                try:
                    cert, signing_time, attrs = _signer(si, body, content_type, pool)
                    break
                except _Fail as exc:
                    if exc.reason is not Reason.DIGEST_MISMATCH or body is candidates[-1]:
                        first = first or exc
            else:
                continue
            try:
                return _trust(cert, pool, roots, crls, when, require_revocation, hook,
                              signing_time, body, attrs)
            except _Fail as exc:
                first = first or exc
        assert first is not None
        raise first


def _trust(cert: x509.Certificate, pool: list[x509.Certificate],
           roots: Sequence[x509.Certificate], crls: Sequence[x509.CertificateRevocationList],
           when: dt.datetime, require_revocation: bool, hook: RevocationCheck | None,
           signing_time: dt.datetime | None, content: bytes,
           attrs: tuple[tuple[str, bytes], ...]) -> VerificationResult:
    if when < cert.not_valid_before_utc:  # RFC 5280 §4.1.2.5
        raise _Fail(Reason.NOT_YET_VALID)
    if when > cert.not_valid_after_utc:
        raise _Fail(Reason.EXPIRED)
    _check_usage(cert)
    chain = _chain(cert, [c for c in pool if c != cert], roots, when)
    source = _revocation(chain, crls, when, hook)
    if require_revocation and source == "unchecked":
        raise _Fail(Reason.REVOCATION_UNKNOWN)
    return VerificationResult(True, None, _addresses(cert), cert.subject.rfc4514_string(),
                              signing_time, content, attrs, source)


def verify(signed: bytes, trusted_roots: Sequence[x509.Certificate],
           intermediates: Sequence[x509.Certificate] = (),
           crls: Sequence[x509.CertificateRevocationList] = (),
           at_time: dt.datetime | None = None, *, content: bytes | None = None,
           require_revocation: bool = False, revocation_check: RevocationCheck | None = None,
           max_size: int = DEFAULT_MAX_SIZE) -> VerificationResult:
    """Verify a signed S/MIME entity (multipart/signed or pkcs7-mime signed-data) or DER.

    For multipart/signed the first part is checked as transmitted, then in
    canonical CRLF form (a message stored with bare LF was signed with CRLF).
    ``at_time`` (default now) is when certificates and CRLs must be valid.
    """
    try:
        canonical: bytes | None = None
        if signed[:1] == b"\x30":
            der, candidates = signed, ([content] if content is not None else None)
        else:
            kind = classify(signed, max_size=max_size)
            if kind is SmimeKind.MULTIPART_SIGNED:
                parts = split_signed(signed, max_size=max_size)
                der, candidates = parts.signature, [parts.content]
                canonical = parts.content
            elif kind is SmimeKind.SIGNED_DATA:
                der, candidates = pkcs7_mime_payload(signed, max_size=max_size), None
            else:
                return VerificationResult(False, Reason.NOT_SIGNED)
    except CmsTooLarge:
        return VerificationResult(False, Reason.TOO_LARGE)
    except SmimeError as exc:
        return VerificationResult(False, Reason.MALFORMED, detail=exc.text)
    result = verify_signed_data(der, trusted_roots, intermediates, crls, at_time,
                                content=candidates, require_revocation=require_revocation,
                                revocation_check=revocation_check, max_size=max_size)
    if result.reason is Reason.DIGEST_MISMATCH and canonical is not None:
        # Stored with bare LF? The sender signed CRLF (RFC 8551 §3.1.1): try that form,
        # only now, so the common case never copies the content.
        fixed = canonicalize(canonical)
        if fixed != canonical:
            return verify_signed_data(der, trusted_roots, intermediates, crls, at_time,
                                      content=fixed, require_revocation=require_revocation,
                                      revocation_check=revocation_check, max_size=max_size)
    return result
