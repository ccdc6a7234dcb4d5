"""Interoperability with the real ``openssl cms`` (OpenSSL 3), in both directions.

What works (all tested below): openssl verifies pli's multipart/signed
(PKCS#1 v1.5 and PSS) and notarisation receipts; pli verifies openssl's
detached, opaque (-nodetach), PSS, no-attribute and ECDSA signatures; openssl
decrypts pli's AuthEnvelopedData (AES-256-GCM) and EnvelopedData (AES-256-CBC)
with RSA-OAEP/SHA-256 or PKCS#1 v1.5 key transport; pli decrypts openssl's
``-aes-256-gcm``/``-aes-128-gcm``/``-aes256``/``-aes128`` with PKCS#1 v1.5 and
OAEP (SHA-1 default and ``rsa_oaep_md:sha256``), S/MIME and DER output.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gateway.smime import pki
from gateway.smime.cms import canonicalize
from gateway.smime.envelope import ContentCipher, KeyTransport, decrypt, encrypt
from gateway.smime.notary import notarise
from gateway.smime.signing import sign
from gateway.smime.verification import verify
from tests.smime.conftest import ORG, PASSPHRASE, DevPki, run_openssl

ENTITY = b"Content-Type: text/plain\n\nDocument de sortie (synthetic)\nligne 2\n"


def _key_args(dev_pki: DevPki) -> list[str]:
    cert, key = dev_pki.files(ORG)
    return ["-recip", str(cert), "-inkey", str(key), "-passin", f"pass:{PASSPHRASE.decode()}"]


@pytest.mark.parametrize("pss", [False, True])
def test_openssl_verifies_pli_signature(
    dev_pki: DevPki, openssl: str, tmp_path: Path, pss: bool
) -> None:
    signed = sign(ENTITY, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain, pss=pss)
    (tmp_path / "m.eml").write_bytes(signed)
    out = run_openssl(
        openssl,
        "-verify",
        "-in",
        str(tmp_path / "m.eml"),
        "-CAfile",
        str(dev_pki.paths.root_cert),
        "-purpose",
        "smimesign",
    )
    assert out.stdout == canonicalize(ENTITY)
    assert b"Verification successful" in out.stderr


@pytest.mark.parametrize(
    "extra",
    [[], ["-nodetach"], ["-keyopt", "rsa_padding_mode:pss"], ["-noattr"], ["-md", "sha512"]],
)
def test_pli_verifies_openssl_signature(dev_pki: DevPki, openssl: str, extra: list[str]) -> None:
    cert, key = dev_pki.files(ORG)
    out = run_openssl(
        openssl,
        "-sign",
        "-signer",
        str(cert),
        "-inkey",
        str(key),
        "-passin",
        f"pass:{PASSPHRASE.decode()}",
        *extra,
        stdin=ENTITY,
    ).stdout
    # openssl embeds only the signer's certificate: the intermediate comes from us
    result = verify(out, [dev_pki.root], [dev_pki.intermediate], [dev_pki.crl()])
    assert result.ok, result
    assert result.signer_addresses == (ORG,)
    assert result.content == canonicalize(ENTITY)
    tampered = out.replace(b"ligne 2", b"ligne 3")
    if b"ligne 2" in out:  # clear-signed: the change is in the signed part
        # without signed attributes the signature covers the content itself
        expected = "bad-signature" if "-noattr" in extra else "digest-mismatch"
        assert verify(tampered, [dev_pki.root], [dev_pki.intermediate]).reason == expected


def test_pli_verifies_openssl_ecdsa_and_der(
    dev_pki: DevPki, openssl: str, ec_signer: tuple[pki.CertifiedKey, Path, Path]
) -> None:
    _, cert, key = ec_signer
    out = run_openssl(
        openssl,
        "-sign",
        "-binary",
        "-outform",
        "DER",
        "-signer",
        str(cert),
        "-inkey",
        str(key),
        stdin=ENTITY,
    ).stdout
    result = verify(out, [dev_pki.root], [dev_pki.intermediate], content=ENTITY)
    assert result.ok and result.signer_addresses == ("ec@hopital.example.fr",)


@pytest.mark.parametrize("cipher", list(ContentCipher))
@pytest.mark.parametrize("transport", list(KeyTransport))
def test_openssl_decrypts_pli(
    dev_pki: DevPki, openssl: str, cipher: ContentCipher, transport: KeyTransport
) -> None:
    entity = encrypt(ENTITY, [dev_pki.org.cert], cipher=cipher, key_transport=transport)
    out = run_openssl(openssl, "-decrypt", *_key_args(dev_pki), stdin=entity)
    assert out.stdout == canonicalize(ENTITY)


@pytest.mark.parametrize("cipher", ["-aes-256-gcm", "-aes-128-gcm", "-aes256", "-aes128"])
@pytest.mark.parametrize(
    "keyopts",
    [
        [],
        ["-keyopt", "rsa_padding_mode:oaep"],
        ["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"],
    ],
)
@pytest.mark.parametrize("form", [[], ["-outform", "DER"]])
def test_pli_decrypts_openssl(
    dev_pki: DevPki, openssl: str, cipher: str, keyopts: list[str], form: list[str]
) -> None:
    cert, _ = dev_pki.files(ORG)
    out = run_openssl(
        openssl, "-encrypt", cipher, *form, "-recip", str(cert), *keyopts, stdin=ENTITY
    ).stdout
    assert decrypt(out, dev_pki.org.cert, dev_pki.org.key) == canonicalize(ENTITY)


def test_openssl_verifies_notarisation(dev_pki: DevPki, openssl: str, tmp_path: Path) -> None:
    data = b"\x00binary body\r\nwith bare\nLF and \xff bytes" * 100
    receipt = notarise(
        data, dt.datetime.now(dt.UTC), dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain
    )
    (tmp_path / "r.der").write_bytes(receipt)
    (tmp_path / "data").write_bytes(data)
    out = run_openssl(
        openssl,
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        str(tmp_path / "r.der"),
        "-content",
        str(tmp_path / "data"),
        "-CAfile",
        str(dev_pki.paths.chain),
    )
    assert out.stdout == data
    (tmp_path / "data").write_bytes(data + b"!")
    bad = run_openssl(
        openssl,
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        str(tmp_path / "r.der"),
        "-content",
        str(tmp_path / "data"),
        "-CAfile",
        str(dev_pki.paths.chain),
        check=False,
    )
    assert bad.returncode != 0
