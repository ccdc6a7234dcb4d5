"""Signing and verifying with pli alone: results, reasons, canonical form, parsing."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from cryptography import x509

from gateway.smime import pki
from gateway.smime.cms import canonicalize
from gateway.smime.mime import SmimeKind, classify, split_signed
from gateway.smime.signing import sign, signed_data
from gateway.smime.verification import Reason, Revocation, verify, verify_signed_data
from tests.smime.conftest import ORG, PASSPHRASE, DevPki

MESSAGE = (
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n\n"
    b"Compte rendu de sortie\nPatient: (synthetic)\n"
)


def test_sign_then_verify(dev_pki: DevPki) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    head = signed.split(b"\r\n\r\n", 1)[0]
    assert b'protocol="application/pkcs7-signature"' in head and b"micalg=sha-256" in head
    assert b"\n" not in signed.replace(b"\r\n", b"")  # CRLF everywhere
    result = verify(signed, [dev_pki.root], crls=[dev_pki.crl()])
    assert result.ok and result.reason is None
    assert result.signer_addresses == (ORG,)
    assert result.signer_subject is not None and ORG in result.signer_subject
    assert result.signing_time is not None and result.signing_time >= before
    assert result.content == canonicalize(MESSAGE)
    assert result.revocation == "crl"


def test_signed_attributes_are_the_rfc_ones(dev_pki: DevPki) -> None:
    from asn1crypto import cms

    der = signed_data(b"x", dev_pki.org.cert, dev_pki.org.key)
    si = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    names = {a["type"].native for a in si["signed_attrs"]}
    assert {"content_type", "message_digest", "signing_time", "smime_capabilities"} <= names
    encoded = [a.dump() for a in si["signed_attrs"]]
    assert encoded == sorted(encoded)  # DER SET OF order (X.690 §11.6)


def test_message_stored_with_bare_lf_still_verifies(dev_pki: DevPki) -> None:
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    assert verify(signed.replace(b"\r\n", b"\n"), [dev_pki.root]).ok


def test_tampered_content_is_a_digest_mismatch(dev_pki: DevPki) -> None:
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    result = verify(signed.replace(b"Patient", b"Patiant"), [dev_pki.root])
    assert not result.ok and result.reason is Reason.DIGEST_MISMATCH


def test_tampered_signature_is_bad_signature(dev_pki: DevPki) -> None:
    der = bytearray(signed_data(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain))
    der[-5] ^= 0x01  # inside the signature value, the last field
    result = verify_signed_data(bytes(der), [dev_pki.root], content=MESSAGE)
    assert not result.ok and result.reason is Reason.BAD_SIGNATURE


def test_wrong_root_is_untrusted(dev_pki: DevPki, tmp_path: Path) -> None:
    other = pki.init_pki(tmp_path / "other", [], [], None, key_size=2048)
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    result = verify(signed, [pki.load_certificate(other.root_cert)])
    assert not result.ok and result.reason is Reason.UNTRUSTED
    assert not verify(signed, []).ok


def test_missing_intermediate_is_untrusted_and_can_be_supplied(dev_pki: DevPki) -> None:
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key)  # no chain embedded
    assert verify(signed, [dev_pki.root]).reason is Reason.UNTRUSTED
    assert verify(signed, [dev_pki.root], [dev_pki.intermediate]).ok


def test_expired_certificate(dev_pki: DevPki) -> None:
    ident = pki.issue(
        dev_pki.paths.directory,
        "expired@hopital.example.fr",
        PASSPHRASE,
        key_size=2048,
        now=dt.datetime.now(dt.UTC) - dt.timedelta(days=10),
        validity=dt.timedelta(days=1),
    )
    signed = sign(MESSAGE, ident.cert, ident.key, ident.chain)
    result = verify(signed, [dev_pki.root])
    assert not result.ok and result.reason is Reason.EXPIRED
    # a still-valid certificate judged four years from now has expired too
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=4 * 365)
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    assert verify(signed, [dev_pki.root], at_time=later).reason is Reason.EXPIRED
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    assert verify(signed, [dev_pki.root], at_time=earlier).reason is Reason.NOT_YET_VALID


def test_tls_certificate_cannot_sign_mail(dev_pki: DevPki) -> None:
    cert_path, key_path = dev_pki.paths.tls("hopital.example.fr")
    tls = pki.load_identity(cert_path, key_path, PASSPHRASE)
    signed = sign(MESSAGE, tls.cert, tls.key, tls.chain)
    result = verify(signed, [dev_pki.root])
    assert not result.ok and result.reason is Reason.WRONG_USAGE


def test_pss_and_sha512(dev_pki: DevPki) -> None:
    signed = sign(
        MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain, pss=True, digest="sha512"
    )
    assert b"micalg=sha-512" in signed
    assert verify(signed, [dev_pki.root]).ok


def test_ecdsa_signer(dev_pki: DevPki, ec_signer: tuple[pki.CertifiedKey, Path, Path]) -> None:
    ident = ec_signer[0]
    result = verify(sign(MESSAGE, ident.cert, ident.key, ident.chain), [dev_pki.root])
    assert result.ok and result.signer_addresses == ("ec@hopital.example.fr",)


def test_opaque_signed_data(dev_pki: DevPki) -> None:
    der = signed_data(
        canonicalize(MESSAGE), dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain, detached=False
    )
    entity = (
        b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(der)
    )
    assert classify(entity) is SmimeKind.SIGNED_DATA
    result = verify(entity, [dev_pki.root])
    assert result.ok and result.content == canonicalize(MESSAGE)
    assert verify(der, [dev_pki.root]).ok


def test_detached_der_needs_its_content(dev_pki: DevPki) -> None:
    der = signed_data(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    assert verify(der, [dev_pki.root]).reason is Reason.NO_CONTENT
    assert verify(der, [dev_pki.root], content=MESSAGE).ok


def test_revocation_required_and_ocsp_hook(dev_pki: DevPki) -> None:
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    assert verify(signed, [dev_pki.root]).revocation == "unchecked"
    result = verify(signed, [dev_pki.root], require_revocation=True)
    assert not result.ok and result.reason is Reason.REVOCATION_UNKNOWN
    seen: list[int] = []

    def good(cert: x509.Certificate, issuer: x509.Certificate, at: dt.datetime) -> Revocation:
        seen.append(cert.serial_number)
        return Revocation.GOOD

    result = verify(signed, [dev_pki.root], require_revocation=True, revocation_check=good)
    assert result.ok and result.revocation == "ocsp"
    assert seen[0] == dev_pki.org.cert.serial_number
    result = verify(signed, [dev_pki.root], revocation_check=lambda c, i, t: Revocation.REVOKED)
    assert result.reason is Reason.REVOKED


def test_crl_from_another_issuer_is_ignored(dev_pki: DevPki, tmp_path: Path) -> None:
    other = pki.init_pki(tmp_path / "other", [], [], None, key_size=2048)
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    result = verify(signed, [dev_pki.root], crls=[pki.load_crl(other.crl)])
    assert result.ok and result.revocation == "unchecked"


def test_classify_and_split(dev_pki: DevPki) -> None:
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    assert classify(signed) is SmimeKind.MULTIPART_SIGNED
    parts = split_signed(signed)
    assert parts.content == canonicalize(MESSAGE) and parts.micalg == "sha-256"
    assert parts.signature[:1] == b"\x30"
    assert classify(MESSAGE) is SmimeKind.NONE
    assert verify(MESSAGE, [dev_pki.root]).reason is Reason.NOT_SIGNED
    env = b"Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data\r\n\r\nAA==\r\n"
    assert classify(env) is SmimeKind.AUTH_ENVELOPED


def test_a_certificate_with_an_unknown_key_type_is_reported_not_raised(
    dev_pki: DevPki,
) -> None:
    """Found by the fuzz test: cryptography raises UnsupportedAlgorithm on such a key."""
    from gateway.smime import signed_data, verify_signed_data

    der = signed_data(
        b"content", dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain, detached=False
    )
    rsa_oid = bytes.fromhex("06092a864886f70d010101")
    assert rsa_oid in der
    broken = der.replace(rsa_oid, bytes.fromhex("060900864886f70d010101"))
    result = verify_signed_data(broken, [dev_pki.root], [dev_pki.intermediate], [dev_pki.crl()])
    assert not result.ok and result.reason is not None


def test_a_content_line_that_starts_with_the_boundary_is_content(dev_pki: DevPki) -> None:
    """RFC 2046 §5.1.1: only ``--boundary`` then ``--`` or padding ends a part, so a
    line ``--boundaryXYZ`` inside the signed content must not cut it short."""
    tricky = MESSAGE + b"--pli-fixed-not-a-delimiter\n"
    signed = sign(tricky, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    generated = signed.split(b'boundary="', 1)[1].split(b'"', 1)[0]
    # The boundary is outside what was signed: renaming it keeps the signature valid.
    signed = signed.replace(generated, b"pli-fixed")
    parts = split_signed(signed)
    assert parts.content == canonicalize(tricky)
    assert verify(signed, [dev_pki.root]).ok
