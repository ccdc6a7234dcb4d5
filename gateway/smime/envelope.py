"""Encrypting to recipients and decrypting what was encrypted to us: CMS EnvelopedData
(RFC 5652 §6) and AuthEnvelopedData (RFC 5083) with AES-GCM (RFC 5084).

This module owns the choice of content cipher and key transport, the
recipient matching and every decryption check. By default it writes
``authEnveloped-data`` with AES-256-GCM and RSA-OAEP/SHA-256 (RFC 8551 §2.7 and
RFC 8017); ``cipher=AES256_CBC`` writes the widely readable EnvelopedData
with RSA PKCS#1 v1.5. It reads both, with PKCS#1 v1.5 or OAEP (SHA-1/256/384/
512) key transport and AES-128/192/256. Interoperability with OpenSSL 3.0
``openssl cms`` (tested both ways in ``tests/smime/test_openssl_interop.py``):
``openssl cms -decrypt`` reads all four combinations pli writes, and pli reads
``openssl cms -encrypt -aes-256-gcm`` and ``-aes256``, with PKCS#1 v1.5 or
``-keyopt rsa_padding_mode:oaep`` (SHA-1 default or ``rsa_oaep_md:sha256``).
It must never reveal why a decryption failed beyond "failed" (one exception,
one text: no padding oracle), never accept an authentication tag shorter than
96 bits, and never log keys or content.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Sequence
from typing import Any

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.smime.cms import (
    DEFAULT_MAX_SIZE,
    DecryptionFailed,
    GcmParameters,
    MalformedCms,
    NotForUs,
    UnsupportedCms,
    base64_lines,
    canonicalize,
    malformed_on_error,
)
from gateway.smime.layout import Sealed, locate_enveloped
from gateway.smime.pki import PrivateKey

__all__ = ["ContentCipher", "KeyTransport", "decrypt", "encrypt", "envelope"]

_OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,  # RFC 8017 default; fine inside OAEP (no collision needed)
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_AES_KEY_BYTES = {"aes128": 16, "aes192": 24, "aes256": 32}
_MIN_TAG = 12  # RFC 5084 §3.1 allows 12..16; shorter tags are refused


class ContentCipher(enum.Enum):
    """The content-encryption algorithm, which also decides the CMS content type."""

    AES256_GCM = "aes256_gcm"  # AuthEnvelopedData, smime-type=authEnveloped-data (RFC 8551)
    AES256_CBC = "aes256_cbc"  # EnvelopedData, smime-type=enveloped-data (compatible)


class KeyTransport(enum.Enum):
    RSA_OAEP = "rsaes_oaep"  # with SHA-256 and MGF1-SHA-256 (RFC 8551 §2.3, RFC 4055 §4)
    RSA_PKCS1V15 = "rsaes_pkcs1v15"  # what every client reads


def _oaep_sha256() -> padding.AsymmetricPadding:
    return padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)


# The key-encryption AlgorithmIdentifiers pli writes, as DER: RSA-OAEP with SHA-256 and
# MGF1-SHA-256 (RFC 4055 §4.1, RFC 8551 §2.3) and rsaEncryption (PKCS#1 v1.5). Reading
# them back is a dictionary lookup; any other encoding has its parameters parsed.
_OAEP_SHA256_DER: bytes = cms.KeyEncryptionAlgorithm(
    {
        "algorithm": "rsaes_oaep",
        "parameters": algos.RSAESOAEPParams(
            {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            }
        ),
    }
).dump()
_PKCS1V15_DER: bytes = cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_pkcs1v15"}).dump()
_KNOWN_PADDINGS: dict[bytes, Callable[[], padding.AsymmetricPadding]] = {
    _OAEP_SHA256_DER: _oaep_sha256,
    _PKCS1V15_DER: padding.PKCS1v15,
}


def _asn1_cert(cert: x509.Certificate) -> Any:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _recipient_info(cert: x509.Certificate, cek: bytes, transport: KeyTransport) -> Any:
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise UnsupportedCms("recipient certificates must carry RSA keys (key transport)")
    c = _asn1_cert(cert)
    if transport is KeyTransport.RSA_OAEP:
        alg = cms.KeyEncryptionAlgorithm.load(_OAEP_SHA256_DER)
        encrypted = public.encrypt(cek, _oaep_sha256())
    else:
        alg = cms.KeyEncryptionAlgorithm.load(_PKCS1V15_DER)
        encrypted = public.encrypt(cek, padding.PKCS1v15())
    return cms.RecipientInfo(
        {
            "ktri": cms.KeyTransRecipientInfo(
                {
                    "version": "v0",  # RFC 5652 §6.2.1: v0 with issuerAndSerialNumber
                    "rid": cms.RecipientIdentifier(
                        {
                            "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                                {"issuer": c.issuer, "serial_number": c.serial_number}
                            )
                        }
                    ),
                    "key_encryption_algorithm": alg,
                    "encrypted_key": encrypted,
                }
            )
        }
    )


def envelope(
    content: bytes,
    recipients: Sequence[x509.Certificate],
    *,
    cipher: ContentCipher = ContentCipher.AES256_GCM,
    key_transport: KeyTransport | None = None,
) -> bytes:
    """A DER ContentInfo encrypting ``content`` (bytes as given) to every recipient.

    ``key_transport`` defaults to RSA-OAEP with GCM and to PKCS#1 v1.5 with CBC:
    choosing CBC means "the peer is old", and old peers rarely do OAEP.
    """
    if not recipients:
        raise ValueError("at least one recipient certificate is needed")
    transport = key_transport or (
        KeyTransport.RSA_OAEP if cipher is ContentCipher.AES256_GCM else KeyTransport.RSA_PKCS1V15
    )
    cek = os.urandom(32)
    infos = [_recipient_info(c, cek, transport) for c in recipients]
    if cipher is ContentCipher.AES256_GCM:
        nonce = os.urandom(12)  # RFC 5084 §3.2: 12 octets recommended
        sealed = AESGCM(cek).encrypt(nonce, content, None)
        auth = cms.AuthEnvelopedData(
            {
                "version": "v0",  # RFC 5083 §2.1
                "recipient_infos": infos,
                "auth_encrypted_content_info": {
                    "content_type": "data",
                    "content_encryption_algorithm": {
                        "algorithm": "aes256_gcm",
                        "parameters": GcmParameters({"aes_nonce": nonce, "aes_icvlen": 16}),
                    },
                    "encrypted_content": sealed[:-16],
                },
                "mac": sealed[-16:],  # RFC 5084 §3.2: the GCM tag is the mac
            }
        )
        der: bytes = cms.ContentInfo(
            {"content_type": "authenticated_enveloped_data", "content": auth}
        ).dump()
        return der
    iv = os.urandom(16)
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(content) + padder.finalize()
    enc = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    data = cms.EnvelopedData(
        {
            "version": "v0",  # RFC 5652 §6.1: v0 when every RecipientInfo is a v0 ktri
            "recipient_infos": infos,
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": "aes256_cbc", "parameters": iv},
                "encrypted_content": enc.update(padded) + enc.finalize(),
            },
        }
    )
    der = cms.ContentInfo({"content_type": "enveloped_data", "content": data}).dump()
    return der


def encrypt(
    mime_entity: bytes,
    recipients: Sequence[x509.Certificate],
    *,
    cipher: ContentCipher = ContentCipher.AES256_GCM,
    key_transport: KeyTransport | None = None,
) -> bytes:
    """An ``application/pkcs7-mime`` MIME entity enveloping ``mime_entity`` (RFC 8551 §3.3).

    The entity is put in canonical CRLF form first. The caller adds the message
    header fields above the returned Content-Type.
    """
    der = envelope(
        canonicalize(mime_entity), recipients, cipher=cipher, key_transport=key_transport
    )
    smime_type = "authEnveloped-data" if cipher is ContentCipher.AES256_GCM else "enveloped-data"
    head = (
        f'Content-Type: application/pkcs7-mime; smime-type={smime_type}; name="smime.p7m"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="smime.p7m"\r\n\r\n'
    ).encode()
    return head + base64_lines(der)


# ---------------------------------------------------------------- decryption


class _Me:
    """Our certificate's identifiers, compared as bytes first (the issuer DER as
    cryptography encodes it), X.520 name comparison (slow: string prep) only if needed."""

    def __init__(self, cert: x509.Certificate) -> None:
        self.cert = cert
        self.serial = cert.serial_number
        self.issuer_der = cert.issuer.public_bytes()
        self._asn1_issuer: Any = None

    def is_ours(self, rid: Any) -> bool:
        if rid.name == "issuer_and_serial_number":
            ias = rid.chosen
            if ias["serial_number"].native != self.serial:
                return False
            if ias["issuer"].dump() == self.issuer_der:
                return True
            if self._asn1_issuer is None:
                self._asn1_issuer = _asn1_cert(self.cert).issuer
            return bool(ias["issuer"] == self._asn1_issuer)
        if rid.name == "subject_key_identifier":
            try:
                ski = self.cert.extensions.get_extension_for_class(
                    x509.SubjectKeyIdentifier
                ).value.digest
            except x509.ExtensionNotFound:
                return False
            return bool(rid.chosen.native == ski)
        return False


def _key_padding(alg: Any) -> padding.AsymmetricPadding:
    known = _KNOWN_PADDINGS.get(alg.dump())
    if known is not None:
        return known()
    name = alg["algorithm"].native
    if name == "rsaes_pkcs1v15":
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
    elif name == "rsaes_oaep":
        p = alg["parameters"]
        h = _OAEP_HASHES.get(p["hash_algorithm"]["algorithm"].native)
        mgf = p["mask_gen_algorithm"]
        mgf_h = _OAEP_HASHES.get(mgf["parameters"]["algorithm"].native)
        if h is None or mgf_h is None or mgf["algorithm"].native != "mgf1":
            raise UnsupportedCms("RSA-OAEP parameters not supported")
        label = p["p_source_algorithm"]["parameters"].native or None
        pad = padding.OAEP(padding.MGF1(mgf_h()), h(), label)
    else:
        raise UnsupportedCms(f"key transport {name} not supported")
    return pad


def _unwrap_cek(ktri: Any, key: rsa.RSAPrivateKey) -> bytes:
    pad = _key_padding(ktri["key_encryption_algorithm"])
    try:
        return key.decrypt(ktri["encrypted_key"].native, pad)
    except ValueError:
        raise DecryptionFailed("decryption failed") from None


def _decrypt_content(sealed: Sealed, cek: bytes) -> bytes:
    alg, mac, ciphertext = sealed.algorithm, sealed.mac, sealed.ciphertext
    name = alg["algorithm"].native
    cipher, _, mode = name.partition("_")
    if cipher not in _AES_KEY_BYTES or mode not in ("cbc", "gcm"):
        raise UnsupportedCms(f"content encryption {name} not supported")
    if (mode == "gcm") != (mac is not None):  # RFC 5083 §2.1: GCM only in AuthEnvelopedData
        raise MalformedCms(f"{name} in the wrong CMS content type")
    if ciphertext is None:
        raise MalformedCms("no encrypted content (detached content is not supported)")
    if len(cek) != _AES_KEY_BYTES[cipher]:
        raise DecryptionFailed("decryption failed")
    if mac is not None:  # AES-GCM: the check above ties the tag to the mode
        params = GcmParameters.load(alg["parameters"].dump())
        nonce = params["aes_nonce"].native
        if (
            len(mac) != params["aes_icvlen"].native
            or not _MIN_TAG <= len(mac) <= 16
            or not 8 <= len(nonce) <= 64
        ):
            raise MalformedCms("AES-GCM parameters out of range")
        dec = Cipher(
            algorithms.AES(cek), modes.GCM(nonce, mac, min_tag_length=_MIN_TAG)
        ).decryptor()
        if sealed.aad is not None:
            dec.authenticate_additional_data(sealed.aad)
        try:
            # finalize() gives b"", and bytes + b"" is the same object: no copy of the content.
            return dec.update(ciphertext) + dec.finalize()
        except InvalidTag:
            raise DecryptionFailed("decryption failed") from None
    iv = alg["parameters"].native
    if not isinstance(iv, bytes) or len(iv) != 16 or len(ciphertext) % 16:
        raise MalformedCms("AES-CBC parameters or length out of range")
    cbc = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
    unpadder = sym_padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(cbc.update(ciphertext) + cbc.finalize()) + unpadder.finalize()
    except ValueError:
        raise DecryptionFailed("decryption failed") from None


def decrypt(
    data: bytes, cert: x509.Certificate, key: PrivateKey, *, max_size: int = DEFAULT_MAX_SIZE
) -> bytes:
    """The content of an EnvelopedData or AuthEnvelopedData for ``cert``/``key``.

    ``data`` is DER/BER, or an ``application/pkcs7-mime`` MIME entity. Raises
    ``NotForUs`` when no recipient info names ``cert``, ``DecryptionFailed``
    when one does but the key, padding or tag is wrong, ``MalformedCms`` (and
    ``CmsTooLarge``) on anything unparsable, ``UnsupportedCms`` on algorithms
    pli refuses — never another exception on untrusted bytes.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedCms("CMS input must be bytes")
    data = bytes(data)  # no copy for bytes, the type every caller passes
    if data[:1] != b"\x30":
        from gateway.smime.mime import pkcs7_mime_payload

        data = pkcs7_mime_payload(data, max_size=max_size)
    sealed = locate_enveloped(data, max_size)  # bounded by max_size (CmsTooLarge)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UnsupportedCms("only RSA key transport is supported")
    me = _Me(cert)
    with malformed_on_error("enveloped data"):
        for ri in sealed.recipient_infos:
            if ri.name == "ktri" and me.is_ours(ri.chosen["rid"]):
                return _decrypt_content(sealed, _unwrap_cek(ri.chosen, key))
    raise NotForUs("no recipient info for this certificate")
