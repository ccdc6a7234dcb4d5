"""Enveloping and decrypting with pli alone: algorithms, recipients and failure classes."""

from __future__ import annotations

import pytest
from asn1crypto import cms

from gateway.smime.cms import CmsTooLarge, DecryptionFailed, MalformedCms, NotForUs, canonicalize
from gateway.smime.envelope import ContentCipher, KeyTransport, decrypt, encrypt, envelope
from gateway.smime.mime import SmimeKind, classify, pkcs7_mime_payload
from gateway.smime.signing import signed_data
from gateway.smtp import replies
from tests.smime.conftest import DevPki

ENTITY = b"Content-Type: text/plain\n\nLettre de liaison (synthetic)\n"


@pytest.mark.parametrize("cipher", list(ContentCipher))
@pytest.mark.parametrize("transport", list(KeyTransport))
def test_round_trip(dev_pki: DevPki, cipher: ContentCipher, transport: KeyTransport) -> None:
    entity = encrypt(ENTITY, [dev_pki.org.cert], cipher=cipher, key_transport=transport)
    kind = classify(entity)
    assert kind is (
        SmimeKind.AUTH_ENVELOPED if cipher is ContentCipher.AES256_GCM else SmimeKind.ENVELOPED
    )
    assert decrypt(entity, dev_pki.org.cert, dev_pki.org.key) == canonicalize(ENTITY)


def test_default_is_auth_enveloped_gcm_oaep_sha256(dev_pki: DevPki) -> None:
    der = pkcs7_mime_payload(encrypt(ENTITY, [dev_pki.org.cert]))
    info = cms.ContentInfo.load(der)
    assert info["content_type"].native == "authenticated_enveloped_data"
    body = info["content"]
    assert (
        body["auth_encrypted_content_info"]["content_encryption_algorithm"]["algorithm"].native
        == "aes256_gcm"
    )
    kea = body["recipient_infos"][0].chosen["key_encryption_algorithm"]
    assert kea["algorithm"].native == "rsaes_oaep"
    assert kea["parameters"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert len(body["mac"].native) == 16


def test_several_recipients(dev_pki: DevPki) -> None:
    der = envelope(b"x", [dev_pki.org.cert, dev_pki.app.cert])
    assert decrypt(der, dev_pki.org.cert, dev_pki.org.key) == b"x"
    assert decrypt(der, dev_pki.app.cert, dev_pki.app.key) == b"x"


def test_not_for_us(dev_pki: DevPki) -> None:
    der = envelope(b"x", [dev_pki.app.cert])
    with pytest.raises(NotForUs):
        decrypt(der, dev_pki.org.cert, dev_pki.org.key)


@pytest.mark.parametrize("cipher", list(ContentCipher))
def test_wrong_key_for_our_certificate(dev_pki: DevPki, cipher: ContentCipher) -> None:
    der = envelope(b"x" * 100, [dev_pki.org.cert], cipher=cipher)
    with pytest.raises(DecryptionFailed, match=r"^decryption failed$"):
        decrypt(der, dev_pki.org.cert, dev_pki.app.key)


def test_tampered_gcm_ciphertext_and_tag(dev_pki: DevPki) -> None:
    der = envelope(b"confidential" * 10, [dev_pki.org.cert])
    body = bytearray(der)
    body[-30] ^= 1  # inside the ciphertext, before the 16-byte mac
    with pytest.raises(DecryptionFailed):
        decrypt(bytes(body), dev_pki.org.cert, dev_pki.org.key)
    body = bytearray(der)
    body[-1] ^= 1  # the mac
    with pytest.raises(DecryptionFailed):
        decrypt(bytes(body), dev_pki.org.cert, dev_pki.org.key)


def test_garbage_and_truncation_are_malformed(dev_pki: DevPki) -> None:
    der = envelope(b"x" * 64, [dev_pki.org.cert])
    for bad in (
        b"\x30",
        b"\x30\x80",
        b"\x30\x03\x02\x01\x00",
        der[:40],
        der[:-20],
        b"\x30" + b"\xff" * 20,
    ):
        with pytest.raises(MalformedCms):
            decrypt(bad, dev_pki.org.cert, dev_pki.org.key)
    with pytest.raises(MalformedCms):
        decrypt(b"Content-Type: text/plain\r\n\r\nhello", dev_pki.org.cert, dev_pki.org.key)


def test_signed_data_is_not_enveloped(dev_pki: DevPki) -> None:
    der = signed_data(b"x", dev_pki.org.cert, dev_pki.org.key)
    with pytest.raises(MalformedCms, match="not enveloped"):
        decrypt(der, dev_pki.org.cert, dev_pki.org.key)


def test_size_bound(dev_pki: DevPki) -> None:
    der = envelope(b"x" * 5000, [dev_pki.org.cert])
    with pytest.raises(CmsTooLarge):
        decrypt(der, dev_pki.org.cert, dev_pki.org.key, max_size=1000)
    assert replies.for_error(CmsTooLarge("x")).startswith("552 5.3.4")
