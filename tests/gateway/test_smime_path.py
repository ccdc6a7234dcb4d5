"""S/MIME on the message path, for real: openssl/pli-made CMS → smtplib → pli → imaplib,
``pli vault proof`` and ``openssl cms -verify`` on the receipts, and outbound encryption
under a ``force`` policy checked with ``openssl cms -decrypt`` on what left the gateway."""

from __future__ import annotations

import asyncio
import imaplib
import shutil
import signal
import smtplib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from directory.sql import SqlDirectory
from gateway.base.config import load_settings
from gateway.base.db import create_engine
from gateway.smime import CertifiedKey, PkiPaths, encrypt, load_certificate, load_identity, sign
from tests.gateway.running import RunningPli, start_pli, stop_pli
from tests.support.cli import pli_in_process
from tests.support.datadir import DemoDataDirs
from tests.support.servers import free_port

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
    pytest.mark.slow,
]  # end to end: a real `pli serve` process

URGENCES = "urgences@ch-arras.mssante.fr"
GP = "jean.petit@medecin.mssante.fr"  # PER: a personal certificate, key not held by pli
REVOKED_GP = "antoine.lebrun@medecin.mssante.fr"
EHPAD_ORG = "secretariat@ehpad-les-tilleuls.mssante.fr"
REMOTE_DOMAIN = "hp-pre-vert-lens.mssante.fr"  # in the trust space, not served here
REMOTE_WITH_CERT = f"urgences@{REMOTE_DOMAIN}"
REMOTE_WITHOUT = f"ssr@{REMOTE_DOMAIN}"


class _Sink:
    """The other operator: a plain SMTP server keeping what it receives."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content or b"")
        return "250 2.0.0 OK"


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return pli_in_process(*args, "--data-dir", str(data))


async def _publish(data: Path, address: str, der: bytes) -> None:
    engine = create_engine(load_settings(None, data, environ={}).database_url())
    try:
        await SqlDirectory(engine).add_certificate(address, der)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[_Sink, int]]:
    handler, port = _Sink(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def spli(
    tmp_path_factory: pytest.TempPathFactory, sink: tuple[_Sink, int], demo_dirs: DemoDataDirs
) -> Iterator[RunningPli]:
    data = demo_dirs.copy(tmp_path_factory.mktemp("smime") / "var")
    for address, kind in ((GP, "PER"), (REVOKED_GP, "PER"), (REMOTE_WITH_CERT, "ORG")):
        issued = _cli(data, "pki", "issue", address, "--kind", kind, "--key-size", "2048")
        assert issued.returncode == 0, issued.stderr
    remote_cert = load_certificate(PkiPaths(data / "pki").mailbox(REMOTE_WITH_CERT)[0])
    from cryptography.hazmat.primitives.serialization import Encoding

    asyncio.run(_publish(data, REMOTE_WITH_CERT, remote_cert.public_bytes(Encoding.DER)))
    rules = data / "policies.toml"
    rules.write_text(
        rules.read_text().replace(
            '# domains = { "ch-arras.mssante.fr" = "force" }',
            f'domains = {{ "{REMOTE_DOMAIN}" = "force" }}',
        )
    )
    with (data / "pli.toml").open("a") as cfg:
        cfg.write(
            f'\n[queue]\nroutes = {{ "{REMOTE_DOMAIN}" = "127.0.0.1:{sink[1]}" }}\n'
            "require_tls = false\nretry_base = 1\npoll_interval = 0.2\n"
        )
    running = start_pli(data)
    try:
        yield running
    finally:
        stop_pli(running)


def _identity(pli: RunningPli, address: str) -> CertifiedKey:
    cert, key = PkiPaths(pli.data_dir / "pki").mailbox(address)
    return load_identity(cert, key)


def _send(pli: RunningPli, sender: str, rcpt: str, message: bytes) -> str:
    message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # openssl writes LF
    with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s:
        s.starttls(context=pli.client_context())
        s.ehlo("operator.test")
        s.mail(sender)
        code, _ = s.rcpt(rcpt)
        assert code == 250
        code, reply = s.data(message)
        assert code == 250, reply
        return reply.decode().split("id=")[1].strip()


def _imap_find(pli: RunningPli, user: str, marker: str) -> bytes:
    imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
    try:
        imap.starttls(ssl_context=pli.client_context())
        imap.login(user, pli.accounts[user])
        typ, _ = imap.select("INBOX")
        assert typ == "OK"
        typ, fetched = imap.fetch("1:*", "(RFC822)")
        assert typ == "OK"
        for item in fetched:
            if isinstance(item, tuple) and marker.encode() in item[1]:
                imap.logout()
                return bytes(item[1])
        raise AssertionError(f"no message with {marker} for {user}")
    finally:
        if imap.state != "LOGOUT":
            imap.shutdown()


def _proof(pli: RunningPli, ref: str, *args: str) -> subprocess.CompletedProcess[str]:
    return pli.cli("vault", "proof", ref, *args)


def _inner(marker: str) -> bytes:
    return (
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nCompte rendu des urgences {marker}\r\n"
    ).encode()


def _headers(sender: str, rcpt: str, marker: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {rcpt}\r\nSubject: test {marker}\r\nMIME-Version: 1.0\r\n"
    ).encode()


def _openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)


# ---------------------------------------------------------------- inbound


def test_openssl_encrypted_and_signed_is_presented_decrypted(
    spli: RunningPli, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    gp_cert, gp_key = PkiPaths(spli.data_dir / "pki").mailbox(GP)
    rcpt_cert = PkiPaths(spli.data_dir / "pki").mailbox(URGENCES)[0]
    (tmp_path / "inner.eml").write_bytes(_inner(marker))
    signed = _openssl(
        "cms",
        "-sign",
        "-in",
        str(tmp_path / "inner.eml"),
        "-signer",
        str(gp_cert),
        "-inkey",
        str(gp_key),
        "-md",
        "sha256",
    )
    assert signed.returncode == 0, signed.stderr
    (tmp_path / "signed.eml").write_bytes(signed.stdout)
    enc = _openssl(
        "cms",
        "-encrypt",
        "-aes-256-gcm",
        "-in",
        str(tmp_path / "signed.eml"),
        "-from",
        GP,
        "-to",
        URGENCES,
        "-subject",
        f"test {marker}",
        str(rcpt_cert),
    )
    assert enc.returncode == 0, enc.stderr
    assert b"Compte rendu" not in enc.stdout
    ref = _send(spli, GP, URGENCES, enc.stdout)

    raw = _imap_find(spli, URGENCES, marker)
    assert f"Compte rendu des urgences {marker}".encode() in raw
    assert b"pkcs7-mime" not in raw and b"X-PLI-Original: kept" in raw
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"smime=pass" in head and f"header.from={GP}".encode() in head
    assert f"body.smime-identifier={GP}".encode() in head

    proof = _proof(spli, ref)
    assert proof.returncode == 0, proof.stdout + proof.stderr
    assert "s/mime     pass, decrypted: yes" in proof.stdout
    assert "receipt    original: verifies" in proof.stdout
    assert f"from       {GP}" in proof.stdout
    assert marker not in proof.stdout  # facts, never content


def test_pli_encrypted_message_is_decrypted(spli: RunningPli) -> None:
    marker = uuid.uuid4().hex
    gp = _identity(spli, GP)
    rcpt = load_certificate(PkiPaths(spli.data_dir / "pki").mailbox(URGENCES)[0])
    entity = encrypt(sign(_inner(marker), gp.cert, gp.key, gp.chain), [rcpt])
    _send(spli, GP, URGENCES, _headers(GP, URGENCES, marker) + entity)
    raw = _imap_find(spli, URGENCES, marker)
    assert f"Compte rendu des urgences {marker}".encode() in raw
    assert b"smime=pass" in raw.split(b"\r\n\r\n", 1)[0]


def test_tampered_signature_fails_and_is_still_delivered(spli: RunningPli) -> None:
    marker = uuid.uuid4().hex
    gp = _identity(spli, GP)
    signed = sign(_inner(marker), gp.cert, gp.key, gp.chain)
    tampered = signed.replace(b"Compte rendu", b"Compte rendU", 1)
    _send(spli, GP, URGENCES, _headers(GP, URGENCES, marker) + tampered)
    raw = _imap_find(spli, URGENCES, marker)
    assert b"smime=fail (digest-mismatch)" in raw
    assert b"header.from=" not in raw.split(b"\r\n\r\n", 1)[0]


def test_revoked_signer_fails(spli: RunningPli) -> None:
    marker = uuid.uuid4().hex
    signer = _identity(spli, REVOKED_GP)
    revoked = spli.cli("pki", "revoke", REVOKED_GP)
    assert revoked.returncode == 0, revoked.stderr
    time.sleep(1.1)  # the CRL's revocation date is whole seconds
    entity = sign(_inner(marker), signer.cert, signer.key, signer.chain)
    _send(spli, REVOKED_GP, URGENCES, _headers(REVOKED_GP, URGENCES, marker) + entity)
    assert b"smime=fail (revoked)" in _imap_find(spli, URGENCES, marker)


def test_garbage_cms_fails_as_malformed_and_server_carries_on(spli: RunningPli) -> None:
    marker = uuid.uuid4().hex
    garbage = (
        b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nMIIBAAAAAAAAAAAAAAAAAAAA\r\n"
    )
    _send(spli, GP, URGENCES, _headers(GP, URGENCES, marker) + garbage)
    raw = _imap_find(spli, URGENCES, marker)
    assert b"smime=fail (malformed)" in raw and b"MIIBAAAA" in raw
    second = uuid.uuid4().hex  # still serving
    _send(spli, GP, URGENCES, _headers(GP, URGENCES, second) + _inner(second))
    assert b"Authentication-Results" not in _imap_find(spli, URGENCES, second)


def test_encrypted_to_a_key_pli_does_not_hold_is_delivered_unchanged(spli: RunningPli) -> None:
    marker = uuid.uuid4().hex
    gp_cert = load_certificate(PkiPaths(spli.data_dir / "pki").mailbox(GP)[0])
    entity = encrypt(_inner(marker), [gp_cert])
    _send(spli, GP, URGENCES, _headers(GP, URGENCES, marker) + entity)
    raw = _imap_find(spli, URGENCES, marker)
    assert b"smime=neutral" in raw and b"application/pkcs7-mime" in raw


def test_forged_authentication_results_is_removed(spli: RunningPli) -> None:
    marker = uuid.uuid4().hex
    forged = f"Authentication-Results: pli.localhost; smime=pass header.from={GP}\r\n".encode()
    _send(spli, GP, URGENCES, forged + _headers(GP, URGENCES, marker) + _inner(marker))
    raw = _imap_find(spli, URGENCES, marker)
    assert b"smime=pass" not in raw and b"smime=none" in raw


# ---------------------------------------------------------------- notarisation


def test_receipts_verify_offline_with_openssl(spli: RunningPli, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    body = (
        f"From: {GP}\r\nTo: {URGENCES}\r\nSubject: pj {marker}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        f"Content-Type: text/plain\r\n\r\nVoir PJ {marker}\r\n--b1\r\n"
        'Content-Type: application/pdf; name="x.pdf"\r\nContent-Transfer-Encoding: base64'
        "\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOfCg==\r\n--b1--\r\n"
    ).encode()
    ref = _send(spli, GP, URGENCES, body)
    out = tmp_path / "proof"
    proof = _proof(spli, ref, "--export", str(out))
    assert proof.returncode == 0, proof.stdout + proof.stderr
    assert "1 attachment" in proof.stdout and "receipt    part 2: verifies" in proof.stdout
    assert "x.pdf" not in proof.stdout
    assert (out / "part-2.bin").read_bytes().startswith(b"%PDF-1.4")
    for stem, ext in (("message", "eml"), ("part-2", "bin")):
        ok = _openssl(
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(out / f"{stem}.p7s"),
            "-content",
            str(out / f"{stem}.{ext}"),
            "-CAfile",
            str(out / "chain.pem"),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        )
        assert ok.returncode == 0, ok.stderr
    altered = out / "message.eml"
    altered.write_bytes(altered.read_bytes().replace(marker.encode(), b"x" * len(marker), 1))
    bad = _openssl(
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        str(out / "message.p7s"),
        "-content",
        str(altered),
        "-CAfile",
        str(out / "chain.pem"),
        "-purpose",
        "any",
        "-out",
        "/dev/null",
    )
    assert bad.returncode != 0


def test_proof_of_an_unknown_message_is_an_error(spli: RunningPli) -> None:
    run = _proof(spli, "0123456789abcdef")
    assert run.returncode == 1 and "no message" in run.stderr


# ---------------------------------------------------------------- outbound


def _submit(pli: RunningPli, rcpt: str, marker: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", pli.ports["submission"], timeout=30) as s:
        s.starttls(context=pli.client_context())
        s.login(EHPAD_ORG, pli.accounts[EHPAD_ORG])
        s.mail(EHPAD_ORG)
        code, msg = s.rcpt(rcpt)
        if code != 250:
            return code, msg
        return s.data(_headers(EHPAD_ORG, rcpt, marker) + _inner(marker))


def test_force_without_certificate_is_refused_at_rcpt(spli: RunningPli) -> None:
    code, text = _submit(spli, REMOTE_WITHOUT, uuid.uuid4().hex)
    assert code == 550 and text.startswith(b"5.7.1")
    assert REMOTE_WITHOUT.encode() in text and b"certificate" in text


def test_force_with_certificate_leaves_encrypted_and_signed(
    spli: RunningPli, sink: tuple[_Sink, int], tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    code, _ = _submit(spli, REMOTE_WITH_CERT, marker)
    assert code == 250
    deadline = time.monotonic() + 30
    while not any(f"test {marker}".encode() in m for m in sink[0].messages):
        assert time.monotonic() < deadline, "nothing reached the other operator"
        time.sleep(0.2)
    sent = next(m for m in sink[0].messages if f"test {marker}".encode() in m)
    assert (
        b"application/pkcs7-mime" in sent and marker.encode() not in sent.split(b"\r\n\r\n", 1)[1]
    )
    (tmp_path / "sent.eml").write_bytes(sent)
    cert, key = PkiPaths(spli.data_dir / "pki").mailbox(REMOTE_WITH_CERT)
    plain = _openssl(
        "cms",
        "-decrypt",
        "-in",
        str(tmp_path / "sent.eml"),
        "-recip",
        str(cert),
        "-inkey",
        str(key),
    )
    assert plain.returncode == 0, plain.stderr
    assert b"multipart/signed" in plain.stdout and marker.encode() in plain.stdout
    (tmp_path / "signed.eml").write_bytes(plain.stdout)
    verified = _openssl(
        "cms",
        "-verify",
        "-in",
        str(tmp_path / "signed.eml"),
        "-CAfile",
        str(spli.data_dir / "pki" / "ca" / "chain.pem"),
        "-out",
        "/dev/null",
    )
    assert verified.returncode == 0, verified.stderr


# ------------------------------------------------- reload (last: it renews a mailbox key)


def test_sighup_picks_up_a_renewed_mailbox_key(spli: RunningPli) -> None:
    """A served mailbox's certificate is renewed (revoke, issue): after SIGHUP pli
    decrypts with the new key, without a restart and without dropping a connection."""
    assert spli.cli("pki", "revoke", URGENCES).returncode == 0
    issued = spli.cli("pki", "issue", URGENCES, "--kind", "ORG", "--key-size", "2048")
    assert issued.returncode == 0, issued.stderr
    gp = _identity(spli, GP)
    renewed = load_certificate(PkiPaths(spli.data_dir / "pki").mailbox(URGENCES)[0])

    def decrypted() -> bool:
        marker = uuid.uuid4().hex
        entity = encrypt(sign(_inner(marker), gp.cert, gp.key, gp.chain), [renewed])
        _send(spli, GP, URGENCES, _headers(GP, URGENCES, marker) + entity)
        return f"Compte rendu des urgences {marker}".encode() in _imap_find(spli, URGENCES, marker)

    assert not decrypted()  # the running pli still holds the previous key only
    spli.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while not decrypted():
        assert time.monotonic() < deadline, "the renewed key was not picked up"
        time.sleep(0.3)
    # A broken key file on the next SIGHUP: the reload is refused as a whole and the
    # keys in use stay (what the log says, never a half-loaded set).
    _, key_path = PkiPaths(spli.data_dir / "pki").mailbox(URGENCES)
    good = key_path.read_bytes()
    key_path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    try:
        refused = spli.count_events("smime.reload_failed")
        spli.proc.send_signal(signal.SIGHUP)
        spli.wait_for_event("smime.reload_failed", refused)
        assert decrypted()
    finally:
        key_path.write_bytes(good)
