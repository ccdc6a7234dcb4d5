"""``signed_data`` assembles DER from pre-encoded parts: byte for byte what the asn1crypto
construction it replaced writes (the reference below), for every option."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.smime import pki
from gateway.smime.cms import digest_algorithm
from gateway.smime.notary import RECEIVED_AT_OID, notarise, verify_notarisation
from gateway.smime.signing import (
    _issuer_and_serial,
    _signature_algorithm_der,
    attribute_der,
    signed_data,
)
from tests.smime.conftest import DevPki

WHEN = dt.datetime(2026, 3, 1, 12, 30, 5, tzinfo=dt.UTC)


def _reference(
    der: bytes,
    content: bytes,
    cert: x509.Certificate,
    chain: tuple[x509.Certificate, ...],
    detached: bool,
    digest: str,
    kind: str,
) -> bytes:
    """The asn1crypto construction of the same SignedData, with the signature and signed
    attributes taken from ``der`` (PSS and ECDSA signatures are randomised)."""
    parsed = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    to_sign = b"\x31" + parsed["signed_attrs"].dump()[1:]
    signer = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": signer.issuer, "serial_number": signer.serial_number}
                    )
                }
            ),
            "digest_algorithm": digest_algorithm(digest),
            "signed_attrs": cms.CMSAttributes.load(to_sign),
            "signature_algorithm": algos.SignedDigestAlgorithm.load(
                _signature_algorithm_der(digest, kind)
            ),
            "signature": parsed["signature"].native,
        }
    )
    certs = [signer] + [
        asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in chain
    ]
    sd = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [digest_algorithm(digest)],
            "encap_content_info": {
                "content_type": "data",
                "content": None if detached else content,
            },
            "certificates": certs,
            "signer_infos": [signer_info],
        }
    )
    out: bytes = cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()
    return out


@pytest.mark.parametrize("detached", [True, False])
@pytest.mark.parametrize(
    ("digest", "pss"), [("sha256", False), ("sha512", False), ("sha256", True), ("sha384", True)]
)
def test_rsa_matches_the_asn1crypto_construction(
    dev_pki: DevPki, detached: bool, digest: str, pss: bool
) -> None:
    o = dev_pki.org
    der = signed_data(
        b"body\r\n",
        o.cert,
        o.key,
        o.chain,
        detached=detached,
        signing_time=WHEN,
        digest=digest,
        pss=pss,
    )
    kind = "pss" if pss else "pkcs1v15"
    assert der == _reference(der, b"body\r\n", o.cert, o.chain, detached, digest, kind)


def test_ecdsa_and_options_match(
    dev_pki: DevPki, ec_signer: tuple[pki.CertifiedKey, Path, Path]
) -> None:
    ident = ec_signer[0]
    extra = attribute_der("1.2.3.4", core.UTF8String("x").dump())
    der = signed_data(
        b"body",
        ident.cert,
        ident.key,
        ident.chain,
        signing_time=WHEN,
        capabilities=False,
        extra_attrs=[extra],
    )
    assert der == _reference(der, b"body", ident.cert, ident.chain, True, "sha256", "ecdsa")
    attrs = cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signed_attrs"]
    assert {a["type"].dotted for a in attrs} == {
        "1.2.840.113549.1.9.3",
        "1.2.840.113549.1.9.5",
        "1.2.840.113549.1.9.4",
        "1.2.3.4",
    }
    encoded = [a.dump() for a in attrs]
    assert encoded == sorted(encoded)  # DER SET OF (X.690 §11.6)


def test_certificates_are_a_sorted_set(dev_pki: DevPki) -> None:
    o = dev_pki.org
    der = signed_data(b"x", o.cert, o.key, (dev_pki.root, dev_pki.intermediate), signing_time=WHEN)
    assert der == _reference(
        der, b"x", o.cert, (dev_pki.root, dev_pki.intermediate), True, "sha256", "pkcs1v15"
    )


def test_a_v1_certificate_is_named_correctly(dev_pki: DevPki) -> None:
    """No [0] version field in a v1 certificate: issuer and serial are found all the same."""
    v3 = asn1_x509.Certificate.load(dev_pki.org.cert.public_bytes(serialization.Encoding.DER))
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v1",
            "serial_number": 4242,
            "signature": v3["tbs_certificate"]["signature"],
            "issuer": v3.issuer,
            "validity": v3["tbs_certificate"]["validity"],
            "subject": v3.subject,
            "subject_public_key_info": v3.public_key,
        }
    )
    v1 = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": v3["signature_algorithm"],
            "signature_value": v3["signature_value"],
        }
    ).dump()
    assert v1[4:8] != b"\xa0\x03\x02\x01"  # really no version field
    sid = cms.IssuerAndSerialNumber.load(_issuer_and_serial(v1))
    assert sid["serial_number"].native == 4242 and sid["issuer"].dump() == v3.issuer.dump()
    own = cms.IssuerAndSerialNumber.load(_issuer_and_serial(v3.dump()))
    assert own["serial_number"].native == dev_pki.org.cert.serial_number


def test_notarisation_still_round_trips(dev_pki: DevPki) -> None:
    received = dt.datetime.now(dt.UTC).replace(microsecond=654321)
    receipt = notarise(
        b"stored bytes", received, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain
    )
    assert receipt == _reference(
        receipt, b"stored bytes", dev_pki.org.cert, dev_pki.org.chain, True, "sha256", "pkcs1v15"
    )
    checked = verify_notarisation(receipt, b"stored bytes", [dev_pki.root])
    assert checked.result.ok and checked.received_at == received
    assert RECEIVED_AT_OID in dict(checked.result.signed_attrs)
