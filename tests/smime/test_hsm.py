"""Mailbox and notary keys inside a PKCS#11 token (SoftHSM 2): sign, decrypt, never export.

Keys issued by the development PKI are moved into a token, then used through
:class:`TokenRsaKey` by the same S/MIME code that uses key files; openssl
checks what the token signed. The end-to-end test runs a pli whose mailbox and
notary keys exist only in the token.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.base.errors import is_temporary
from gateway.smime import ContentCipher, decrypt, encrypt, notarise, pki, sign, verify
from gateway.smime.hsm import HsmError, HsmUnavailable, Token
from gateway.smtp import replies
from tests.smime.conftest import APP, ORG, DevPki
from tests.support.datadir import DemoDataDirs
from tests.support.softhsm import SoftHsm


@pytest.fixture
def token(softhsm: SoftHsm, dev_pki: DevPki) -> Token:
    t = Token(softhsm.module, softhsm.new_token(), softhsm.pin)
    for ident, address in ((dev_pki.org, ORG), (dev_pki.app, APP)):
        assert isinstance(ident.key, rsa.RSAPrivateKey)
        t.import_key(address, ident.key)
    return t


def _token_key(token: Token, ident: pki.CertifiedKey, address: str) -> pki.CertifiedKey:
    public = ident.cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    key = token.key(address, public)
    assert key is not None
    return pki.CertifiedKey(ident.cert, key, ident.chain)


def test_token_key_signs_what_openssl_and_pli_verify(
    token: Token, dev_pki: DevPki, tmp_path: Path
) -> None:
    signer = _token_key(token, dev_pki.org, ORG)
    content = b"Content-Type: text/plain\r\n\r\nCompte rendu\r\n"
    signed = sign(content, signer.cert, signer.key, signer.chain)
    result = verify(signed, [dev_pki.root], [dev_pki.intermediate], [dev_pki.crl()])
    assert result.ok, result.reason
    (tmp_path / "m.eml").write_bytes(signed)
    ok = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-in",
            str(tmp_path / "m.eml"),
            "-CAfile",
            str(dev_pki.paths.chain),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    import datetime as dt

    receipt = notarise(b"message", dt.datetime.now(dt.UTC), signer.cert, signer.key, signer.chain)
    (tmp_path / "r.p7s").write_bytes(receipt)
    (tmp_path / "msg").write_bytes(b"message")
    ok = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "r.p7s"),
            "-content",
            str(tmp_path / "msg"),
            "-CAfile",
            str(dev_pki.paths.chain),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("cipher", [ContentCipher.AES256_GCM, ContentCipher.AES256_CBC])
def test_token_key_decrypts_oaep_and_v15(
    token: Token, dev_pki: DevPki, cipher: ContentCipher
) -> None:
    holder = _token_key(token, dev_pki.app, APP)
    entity = b"Content-Type: text/plain\r\n\r\nsecret\r\n"
    sealed = encrypt(entity, [holder.cert], cipher=cipher)
    assert decrypt(sealed, holder.cert, holder.key) == entity


def test_the_private_half_never_leaves_and_twins_are_refused(token: Token, dev_pki: DevPki) -> None:
    holder = _token_key(token, dev_pki.app, APP)
    with pytest.raises(HsmError, match="stays in the token"):
        holder.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    with pytest.raises(HsmError, match="stays in the token"):
        holder.key.private_numbers()
    with pytest.raises(HsmError, match="already holds a key labelled"):
        assert isinstance(dev_pki.app.key, rsa.RSAPrivateKey)
        token.import_key(APP, dev_pki.app.key)
    assert isinstance(holder.key, rsa.RSAPrivateKey)
    with pytest.raises(HsmError, match="not offered"):
        holder.key.decrypt(
            b"x" * 256, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA3_256(), None)
        )
    public = holder.cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert token.key("nobody@hopital.example.fr", public) is None


def test_hsm_configuration_mistakes_are_named(softhsm: SoftHsm) -> None:
    label = softhsm.new_token()
    with pytest.raises(HsmError, match="refused the PIN"):
        Token(softhsm.module, label, "0000")
    with pytest.raises(HsmError, match="no PKCS#11 token labelled 'nope'"):
        Token(softhsm.module, "nope", softhsm.pin)


@pytest.mark.slow  # end to end: a real `pli serve` process
def test_a_server_whose_keys_live_only_in_the_token(
    softhsm: SoftHsm, tmp_path_factory: pytest.TempPathFactory, demo_dirs: DemoDataDirs
) -> None:
    """hsm-import moves the demo mailbox and notary keys; the server decrypts and notarises."""
    import imaplib
    import smtplib

    from tests.gateway.running import start_pli, stop_pli
    from tests.support.cli import pli_in_process

    label = softhsm.new_token("smime")
    data = tmp_path_factory.mktemp("pli-hsm-smime") / "var"
    pin_file = data.parent / "pin"
    pin_file.write_text(softhsm.pin)
    extra = (
        f'[smime]\npkcs11_module = "{softhsm.module}"\npkcs11_token_label = "{label}"\n'
        f'pkcs11_pin_file = "{pin_file}"\n'
    )
    demo_dirs.copy(data, config_extra=extra)
    urgences = "urgences@ch-arras.mssante.fr"
    notary = next(p.name[:-4] for p in (data / "pki" / "mailboxes").glob("notary@*.pem"))
    for address in (urgences, notary):
        moved = pli_in_process("pki", "hsm-import", address, "--data-dir", str(data))
        assert moved.returncode == 0, moved.stderr
        assert not (data / "pki" / "mailboxes" / f"{address}.key").exists()
    again = pli_in_process("pki", "hsm-import", urgences, "--data-dir", str(data))
    assert again.returncode != 0 and again.stderr.startswith("pli: ")

    pli = start_pli(data)
    try:
        cert = pki.load_certificate(data / "pki" / "mailboxes" / f"{urgences}.pem")
        inner = b"Content-Type: text/plain; charset=utf-8\r\n\r\nDLU hsm-marker\r\n"
        body = encrypt(inner, [cert])
        nurse = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
        with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s:
            s.starttls(context=pli.client_context())
            s.ehlo()
            s.mail(nurse)
            s.rcpt(urgences)
            code, reply = s.data(
                f"From: {nurse}\r\nTo: {urgences}\r\nSubject: x\r\n".encode() + body
            )
        assert code == 250, reply
        ref = reply.decode().split()[-1].strip("<>[]").removeprefix("id=")
        imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
        try:
            imap.starttls(ssl_context=pli.client_context())
            imap.login(urgences, pli.accounts[urgences])
            _, count = imap.select("INBOX")
            assert count[0] is not None
            _, got = imap.fetch(count[0].decode(), "(BODY.PEEK[])")
        finally:
            imap.shutdown()
        shown = b"".join(p[1] for p in got if isinstance(p, tuple))
        assert b"hsm-marker" in shown  # decrypted with the token's key
        proof = pli.cli("vault", "proof", ref)
        assert proof.returncode == 0, proof.stdout + proof.stderr  # receipts signed in the token
    finally:
        stop_pli(pli)


@pytest.mark.parametrize("algorithm", [hashes.SHA256(), hashes.SHA384()])
def test_oaep_decoding_matches_cryptography_and_refuses_tampering(
    dev_pki: DevPki, algorithm: hashes.HashAlgorithm
) -> None:
    """The software half of OAEP when a token only offers raw RSA (RFC 8017 §7.1.2)."""
    from gateway.smime.hsm import _oaep_decode

    key = dev_pki.app.key
    assert isinstance(key, rsa.RSAPrivateKey)
    pad = padding.OAEP(padding.MGF1(algorithm), algorithm, None)
    k = (key.key_size + 7) // 8
    numbers = key.private_numbers()
    for secret in (b"", b"k" * 32, b"x" * (k - 2 * algorithm.digest_size - 2)):
        c = int.from_bytes(key.public_key().encrypt(secret, pad), "big")
        em = pow(c, numbers.d, numbers.public_numbers.n).to_bytes(k, "big")
        assert _oaep_decode(em, k, algorithm) == secret
        for i in (0, 5, k - 1):
            bad = bytearray(em)
            bad[i] ^= 1
            with pytest.raises(HsmError, match="decryption error"):
                _oaep_decode(bytes(bad), k, algorithm)


def test_a_failing_token_is_a_temporary_failure(token: Token, dev_pki: DevPki) -> None:
    """A removed token or a closed session must make SMTP say 451 (the sender retries),
    never deliver the message as undecryptable; a request the token refuses stays a
    permanent S/MIME failure."""
    holder = _token_key(token, dev_pki.app, APP)
    assert isinstance(holder.key, rsa.RSAPrivateKey)
    sealed = encrypt(b"Content-Type: text/plain\r\n\r\nsecret\r\n", [holder.cert])
    token.close()  # what a pulled token or a restarted HSM daemon does to the session
    with pytest.raises(HsmUnavailable) as gone:
        decrypt(sealed, holder.cert, holder.key)
    assert is_temporary(gone.value)
    assert replies.for_error(gone.value, "ref1").startswith("451 4.3.0 The HSM is unavailable")
    refused = HsmError("the token refused the operation: MechanismInvalid")
    assert not is_temporary(refused)
    assert replies.for_error(refused).startswith("554 5.7.5 ")
