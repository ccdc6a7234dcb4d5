"""Verifying CMS SignedData and S/MIME signed messages (cryptography has no public CMS verify).

This module owns every check between "bytes claiming a signature" and "this
mailbox signed this content": the messageDigest against the content, the
signature over the DER of the signed attributes (RSA PKCS#1 v1.5, RSA-PSS,
ECDSA, Ed25519), then the signer certificate's validity, usage, chain to a
trusted root and revocation, which ``gateway.smime.certpath`` judges (with
the caller's ``ChainCache`` remembering built paths, never revocation). It reads
the CMS structures through ``gateway.smime.layout`` (a DER walker, asn1crypto
for the small parts and for BER). It returns a ``VerificationResult`` with a
stable reason code; it must never raise on untrusted input, never report
``ok`` without a trusted chain, and never log content.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Sequence
from typing import Any

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.smime.certpath import Judge, judge_signer
from gateway.smime.cms import (
    DEFAULT_MAX_SIZE,
    CmsTooLarge,
    MalformedCms,
    SmimeError,
    UnsupportedCms,
    canonicalize,
    hash_by_name,
    hash_for,
    malformed_on_error,
    signed_attrs_der,
)
from gateway.smime.layout import attributes, locate_signed
from gateway.smime.mime import SmimeKind, open_signed, pkcs7_mime_payload
from gateway.smime.outcome import Failed, Reason, Revocation, RevocationCheck, VerificationResult
from gateway.smime.trustcache import ChainCache

__all__ = [
    "ChainCache",
    "Reason",
    "Revocation",
    "RevocationCheck",
    "VerificationResult",
    "verify",
    "verify_signed_data",
]


# ---------------------------------------------------------------- signature


def _verify_signature(
    public: Any, sig_alg: Any, digest: hashes.HashAlgorithm, signature: bytes, data: bytes
) -> None:
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
                raise Failed(Reason.BAD_SIGNATURE, "key type does not match the algorithm")
            public.verify(
                signature, data, padding.PSS(padding.MGF1(mgf_h), p["salt_length"].native), h
            )
        elif name == "rsassa_pkcs1v15" or name.endswith("_rsa"):
            if name != "rsassa_pkcs1v15":  # sha256_rsa …: the hash is in the OID (RFC 5754 §3.2)
                digest = hash_by_name(name.split("_")[0])
            if not isinstance(public, rsa.RSAPublicKey):
                raise Failed(Reason.BAD_SIGNATURE, "key type does not match the algorithm")
            public.verify(signature, data, padding.PKCS1v15(), digest)
        elif name == "ecdsa" or name.endswith("_ecdsa"):
            if name != "ecdsa":  # RFC 5753 §7.1.3: ecdsa-with-SHA256 …
                digest = hash_by_name(name.split("_")[0])
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise Failed(Reason.BAD_SIGNATURE, "key type does not match the algorithm")
            public.verify(signature, data, ec.ECDSA(digest))
        elif name == "ed25519":  # RFC 8419 §3.1
            if not isinstance(public, ed25519.Ed25519PublicKey):
                raise Failed(Reason.BAD_SIGNATURE, "key type does not match the algorithm")
            public.verify(signature, data)
        else:
            raise UnsupportedCms(f"signature algorithm {name}")
    except InvalidSignature:
        raise Failed(Reason.BAD_SIGNATURE) from None


# ---------------------------------------------------------------- SignedData


def _find_signer(sid: Any, certs: list[x509.Certificate]) -> x509.Certificate:
    from asn1crypto import x509 as asn1_x509

    kind = sid.name
    if kind == "issuer_and_serial_number":
        ias = sid.chosen
        serial, issuer_der = ias["serial_number"].native, ias["issuer"].dump()
        for cert in certs:
            if cert.serial_number != serial:
                continue
            # Byte equality first; X.520 name comparison (slow: string prep) only if needed.
            if cert.issuer.public_bytes() == issuer_der:
                return cert
            issuer = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)).issuer
            if issuer == ias["issuer"]:
                return cert
    elif kind == "subject_key_identifier":
        wanted = sid.chosen.native
        for cert in certs:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            except x509.ExtensionNotFound:
                continue
            if ski.digest == wanted:
                return cert
    raise Failed(Reason.SIGNER_CERT_MISSING)


def _signer(
    si: Any,
    content: bytes,
    content_type: str,
    certs: list[x509.Certificate],
) -> tuple[x509.Certificate, dt.datetime | None, tuple[tuple[str, bytes], ...]]:
    """Check one SignerInfo's digest and signature (RFC 5652 §5.6); return its certificate."""
    digest = hash_for(si["digest_algorithm"])
    cert = _find_signer(si["sid"], certs)
    attrs = si["signed_attrs"]
    signing_time = None
    listed: list[tuple[str, bytes]] = []
    if attrs.contents:
        encoded = attrs.dump()
        parsed = attributes(encoded)
        found: dict[str, list[bytes]] = {}
        for a in parsed:
            listed.append((a.oid, a.values_der))
            if a.oid in found:  # RFC 5652 §5.3: each attribute type at most once
                raise MalformedCms(f"signed attribute {a.oid} twice")
            found[a.oid] = a.values
        ct, md = found.get("1.2.840.113549.1.9.3"), found.get("1.2.840.113549.1.9.4")
        if ct is None or md is None or len(ct) != 1 or len(md) != 1:  # RFC 5652 §5.3
            raise MalformedCms("contentType and messageDigest attributes are required")
        if cms.ContentType.load(ct[0]).native != content_type:  # RFC 5652 §11.1
            raise Failed(Reason.CONTENT_TYPE_MISMATCH)
        h = hashes.Hash(digest)
        h.update(content)
        if not hmac.compare_digest(
            h.finalize(), core.OctetString.load(md[0]).native
        ):  # RFC 5652 §11.2
            raise Failed(Reason.DIGEST_MISMATCH)
        st = found.get("1.2.840.113549.1.9.5")
        if st is not None and len(st) == 1:
            signing_time = cms.Time.load(st[0]).native.astimezone(dt.UTC)
        # RFC 5652 §5.4: the signature covers the attributes with the SET OF tag; the
        # bytes as received first, the DER-sorted re-encoding for sloppy signers second
        # (computed only if the first fails).
        candidates: list[bytes | Callable[[], bytes]] = [
            b"\x31" + encoded[1:],
            lambda: signed_attrs_der([a.der for a in parsed]),
        ]
    else:
        if content_type != "data":  # RFC 5652 §5.3: attributes required for other types
            raise MalformedCms("signed attributes required for non-data content")
        candidates = [content]
    last: Failed | None = None
    tried: bytes | None = None
    for candidate in candidates:
        data = candidate if isinstance(candidate, bytes) else candidate()
        if data == tried:
            continue
        tried = data
        try:
            _verify_signature(
                cert.public_key(), si["signature_algorithm"], digest, si["signature"].native, data
            )
            return cert, signing_time, tuple(listed)
        except Failed as exc:
            last = exc
    raise last or Failed(Reason.BAD_SIGNATURE)  # candidates is never empty: last is set


def verify_signed_data(
    der: bytes,
    trusted_roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
    at_time: dt.datetime | None = None,
    *,
    content: bytes | Sequence[bytes] | None = None,
    require_revocation: bool = False,
    revocation_check: RevocationCheck | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    chain_cache: ChainCache | None = None,
) -> VerificationResult:
    """Verify a DER SignedData; ``content`` for a detached one (several candidates may be
    given: the first whose digest matches wins). Never raises on untrusted bytes.

    ``chain_cache`` (a long-lived caller's, e.g. the TrustStore's) remembers built
    certification paths and CRL signature checks (never revocation status, never a
    failure); ``None`` builds and checks everything each time.
    """
    when = (at_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    judge = Judge(trusted_roots, crls, when, require_revocation, revocation_check, chain_cache)
    try:
        return _verify(der, intermediates, content, max_size, judge)
    except Failed as exc:
        return VerificationResult(False, exc.reason, detail=exc.detail)
    except CmsTooLarge:
        return VerificationResult(False, Reason.TOO_LARGE)
    except UnsupportedCms as exc:
        return VerificationResult(False, Reason.UNSUPPORTED, detail=exc.text)
    except SmimeError as exc:
        return VerificationResult(False, Reason.MALFORMED, detail=exc.text)
    except UnsupportedAlgorithm:  # e.g. an embedded certificate with an unknown key type
        return VerificationResult(
            False, Reason.UNSUPPORTED, detail="a certificate's key or algorithm is not supported"
        )
    except ValueError:  # cryptography refusing a malformed certificate, key or signature
        return VerificationResult(
            False, Reason.MALFORMED, detail="a certificate or key inside is malformed"
        )


def _verify(
    der: bytes,
    intermediates: Sequence[x509.Certificate],
    content: bytes | Sequence[bytes] | None,
    max_size: int,
    judge: Judge,
) -> VerificationResult:
    layout = locate_signed(der, max_size)
    if layout is None:
        raise Failed(Reason.NOT_SIGNED)
    with malformed_on_error("SignedData"):
        content_type = layout.content_type
        if layout.content is not None:  # RFC 5652 §5.2: absent when detached
            candidates = [layout.content]
        elif content is None:
            raise Failed(Reason.NO_CONTENT)
        else:
            candidates = [content] if isinstance(content, bytes) else list(content)
        certs: list[x509.Certificate] = []
        for cert_der in layout.certificates:
            try:
                certs.append(x509.load_der_x509_certificate(cert_der))
            except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
                continue
        signer_infos = layout.signer_infos
        if not signer_infos:
            raise Failed(Reason.NO_SIGNER)
        pool = certs + list(intermediates)
        first: Failed | None = None
        # RFC 8551 §2.5: a message is verified when any of its signatures is.
        for si in signer_infos:
            for body in candidates:
                try:
                    cert, signing_time, attrs = _signer(si, body, content_type, pool)
                    break
                except Failed as exc:
                    if exc.reason is not Reason.DIGEST_MISMATCH or body is candidates[-1]:
                        first = first or exc
            else:
                continue
            try:
                addresses, subject, source = judge_signer(cert, pool, judge)
                return VerificationResult(
                    True, None, addresses, subject, signing_time, body, attrs, source
                )
            except Failed as exc:
                first = first or exc
        raise first or Failed(Reason.NO_CONTENT)  # None only if no content was given to try


def verify(
    signed: bytes,
    trusted_roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
    at_time: dt.datetime | None = None,
    *,
    content: bytes | None = None,
    require_revocation: bool = False,
    revocation_check: RevocationCheck | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
    chain_cache: ChainCache | None = None,
) -> VerificationResult:
    """Verify a signed S/MIME entity (multipart/signed or pkcs7-mime signed-data) or DER.

    For multipart/signed the first part is checked as transmitted, then in
    canonical CRLF form (a message stored with bare LF was signed with CRLF).
    ``at_time`` (default now) is when certificates and CRLs must be valid;
    ``chain_cache`` as for ``verify_signed_data``.
    """
    try:
        canonical: bytes | None = None
        if signed[:1] == b"\x30":
            der, candidates = signed, ([content] if content is not None else None)
        else:
            kind, parts = open_signed(signed, max_size=max_size)
            if parts is not None:
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
    result = verify_signed_data(
        der,
        trusted_roots,
        intermediates,
        crls,
        at_time,
        content=candidates,
        require_revocation=require_revocation,
        revocation_check=revocation_check,
        max_size=max_size,
        chain_cache=chain_cache,
    )
    if result.reason is Reason.DIGEST_MISMATCH and canonical is not None:
        # Stored with bare LF? The sender signed CRLF (RFC 8551 §3.1.1): try that form,
        # only now, so the common case never copies the content.
        fixed = canonicalize(canonical)
        if fixed != canonical:
            return verify_signed_data(
                der,
                trusted_roots,
                intermediates,
                crls,
                at_time,
                content=fixed,
                require_revocation=require_revocation,
                revocation_check=revocation_check,
                max_size=max_size,
                chain_cache=chain_cache,
            )
    return result
