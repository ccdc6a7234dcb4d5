"""Judging a signer certificate: validity, usage, the path to a trusted root, revocation.

This module owns the certificate half of S/MIME verification (RFC 8550): the
signer certificate's validity period and key usage, the chain to a trusted
root (``cryptography.x509.verification`` with an emailProtection extension
policy instead of the client-auth default), revocation by CRL with a hook for
OCSP, and the mail addresses the certificate vouches for. Failures raise
``Failed`` with a stable reason. With a ``ChainCache`` the built path, the CRL
signature checks and the derived facts are reused; revocation itself is looked
up on every call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from gateway.smime.outcome import Failed, Reason, Revocation, RevocationCheck
from gateway.smime.trustcache import ChainCache

__all__ = ["Judge", "judge_signer"]


@dataclass(frozen=True, slots=True)
class Judge:
    """What a signer certificate is judged against, fixed for one verification."""

    roots: Sequence[x509.Certificate]
    crls: Sequence[x509.CertificateRevocationList]
    when: dt.datetime
    require_revocation: bool
    hook: RevocationCheck | None
    cache: ChainCache | None


def _check_usage(cert: x509.Certificate) -> None:
    """RFC 8550 §4.4.2/§4.4.4: keyUsage, if present, allows signing; EKU, if present,
    includes emailProtection (or anyExtendedKeyUsage)."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not (ku.digital_signature or ku.content_commitment):
            raise Failed(Reason.WRONG_USAGE, "keyUsage forbids signing")
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if (
            ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku
        ):
            raise Failed(Reason.WRONG_USAGE, "extendedKeyUsage lacks emailProtection")
    except x509.ExtensionNotFound:
        pass


def _eku_validator(
    policy: Policy, cert: x509.Certificate, ext: x509.ExtendedKeyUsage | None
) -> None:
    if (
        ext is not None
        and ExtendedKeyUsageOID.EMAIL_PROTECTION not in ext
        and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in ext
    ):
        raise ValueError("extendedKeyUsage lacks emailProtection")


def _chain(
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at_time: dt.datetime,
) -> list[x509.Certificate]:
    if not roots:
        raise Failed(Reason.UNTRUSTED, "no trusted roots configured")
    # The client verifier's own EKU rule wants clientAuth; S/MIME wants emailProtection,
    # so the end-entity policy is replaced (cryptography >= 45 ExtensionPolicy).
    ee = ExtensionPolicy.permit_all().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _eku_validator
    )
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(at_time)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
        .build_client_verifier()
    )
    try:
        return list(verifier.verify(leaf, pool).chain)
    except VerificationError as exc:
        raise Failed(Reason.UNTRUSTED, str(exc)[:200]) from None


def _revocation(
    chain: list[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    at_time: dt.datetime,
    hook: RevocationCheck | None,
    cache: ChainCache | None,
) -> str:
    """RFC 5280 §6.3, simplified: a CRL counts when its issuer signed it. A certificate
    revoked at or before ``at_time`` fails; the leaf's status decides what is reported."""
    leaf_status = Revocation.UNKNOWN
    source = "unchecked"
    for i, cert in enumerate(chain[:-1]):
        issuer = chain[i + 1]
        status = Revocation.UNKNOWN
        for crl in crls:
            if cache is not None:
                if not cache.crl_issued_by(crl, issuer):
                    continue
            elif crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None and entry.revocation_date_utc <= at_time:
                raise Failed(Reason.REVOKED, f"serial {cert.serial_number:x}")
            fresh = crl.next_update_utc is None or crl.next_update_utc >= at_time
            if fresh and crl.last_update_utc <= at_time:
                status = Revocation.GOOD
        if status is Revocation.UNKNOWN and hook is not None:
            status = hook(cert, issuer, at_time)
            if status is Revocation.REVOKED:
                raise Failed(Reason.REVOKED, f"serial {cert.serial_number:x} (OCSP)")
            source = "ocsp" if i == 0 and status is Revocation.GOOD else source
        elif i == 0 and status is Revocation.GOOD:
            source = "crl"
        if i == 0:
            leaf_status = status
    return source if leaf_status is Revocation.GOOD else "unchecked"


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _addresses(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found = [a.lower() for a in san.get_values_for_type(x509.RFC822Name)]
    except x509.ExtensionNotFound:
        found = []
    if not found:  # RFC 8550 §3: legacy certificates carry it in the subject
        found = [
            str(a.value).lower()
            for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.EMAIL_ADDRESS)
        ]
    return tuple(found)


def judge_signer(
    cert: x509.Certificate, pool: list[x509.Certificate], judge: Judge
) -> tuple[tuple[str, ...], str, str]:
    """(mail addresses, subject, revocation source) of a signer certificate that passes
    every check at ``judge.when``; ``Failed`` otherwise."""
    when = judge.when
    if when < cert.not_valid_before_utc:  # RFC 5280 §4.1.2.5
        raise Failed(Reason.NOT_YET_VALID)
    if when > cert.not_valid_after_utc:
        raise Failed(Reason.EXPIRED)
    others = [c for c in pool if c != cert]

    def build() -> list[x509.Certificate]:
        _check_usage(cert)  # a property of the leaf alone: a remembered path implies it passed
        return _chain(cert, others, judge.roots, when)

    chain = (
        build()
        if judge.cache is None
        else judge.cache.chain(cert, others, judge.roots, when, build)
    )
    source = _revocation(chain, judge.crls, when, judge.hook, judge.cache)
    if judge.require_revocation and source == "unchecked":
        raise Failed(Reason.REVOCATION_UNKNOWN)
    if judge.cache is None:
        addresses, subject = _addresses(cert), _subject(cert)
    else:
        addresses = judge.cache.derived(cert, "addresses", _addresses)
        subject = judge.cache.derived(cert, "subject", _subject)
    return addresses, subject, source
