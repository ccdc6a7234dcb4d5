"""The thin path, for real: smtplib → pli (directory, vault, audit) → imaplib."""

from __future__ import annotations

import imaplib
import json
import shutil
import smtplib
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from email.message import EmailMessage

import pytest

from tests.gateway.running import RunningPli

pytestmark = pytest.mark.slow  # end to end: a real `pli serve` process

NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
GP = "jean.petit@medecin.mssante.fr"
GERIATRICIAN = "sophie.bernard@ch-arras.mssante.fr"


def _close(imap: imaplib.IMAP4) -> None:
    if imap.state != "LOGOUT":
        imap.shutdown()


def _message(subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = NURSE
    msg["To"] = GERIATRICIAN
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def _smtp(pli: RunningPli) -> smtplib.SMTP:
    s = smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30)
    s.starttls(context=pli.client_context())
    s.ehlo("ehpad.test")
    return s


def test_smtp_to_imap_with_audit(pli: RunningPli) -> None:
    marker = uuid.uuid4().hex
    subject = f"DLU patiente {marker}"
    with _smtp(pli) as s:
        refused = s.send_message(_message(subject, f"Corps {marker}\n"))
        assert refused == {}
        code, _ = s.noop()
        assert code == 250

    imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
    try:
        assert "LOGINDISABLED" in imap.capabilities
        imap.starttls(ssl_context=pli.client_context())
        typ: str
        typ, _ = imap.login(GERIATRICIAN, pli.accounts[GERIATRICIAN])
        assert typ == "OK"
        typ, data = imap.select("INBOX")
        assert typ == "OK" and int(data[0] or 0) >= 1
        typ, fetched = imap.fetch((data[0] or b"1").decode(), "(RFC822)")
        assert typ == "OK"
        raw = fetched[0][1] if isinstance(fetched[0], tuple) else b""
        assert marker.encode() in raw
        assert b"Received: from ehpad.test" in raw and b"Return-Path: <" + NURSE.encode() in raw
        imap.logout()
    finally:
        _close(imap)

    verify = pli.cli("audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "audit chain OK" in verify.stdout
    actions = pli.cli("audit", "query", "--mailbox", GERIATRICIAN, "--format", "csv").stdout
    assert "message.delivered" in actions and "message.read" in actions and "login" in actions

    # No content in logs: neither the subject nor the body marker, and sessions are tagged.
    log_text = pli.log_path.read_text()
    assert marker not in log_text
    smtp_events = [e for e in pli.log_lines() if str(e.get("event", "")).startswith("smtp.")]
    assert smtp_events and all(e.get("session_id") for e in smtp_events)
    ingest = [e for e in pli.log_lines() if e.get("event") == "ingest.committed"]
    assert ingest and all(e.get("session_id") for e in ingest)


def test_serve_runs_with_every_tuning_item_on(pli: RunningPli) -> None:
    """The default: each fenced internal applied (test_tuning.py runs them all off)."""
    tuning = [e for e in pli.log_lines() if e.get("event") == "server.tuning"]
    items = ("malloc", "tls_read_buffer", "sqlite_one_trip", "smtp_bulk_data", "s3_direct")
    assert tuning and {k: tuning[-1].get(k) for k in items} == dict.fromkeys(items, True)


@pytest.mark.parametrize(
    ("sender", "rcpt", "code", "enhanced"),
    [
        (NURSE, "nobody.here@ch-arras.mssante.fr", 550, b"5.1.1"),
        (NURSE, "someone@gmail.com", 550, b"5.7.1"),  # never relay
        (NURSE, "x@unknown-operator.mssante.fr", 550, b"5.7.1"),
        ("spammer@example.org", GERIATRICIAN, 550, b"5.7.1"),  # sender outside the trust space
        (NURSE, "bad@@address", 553, b"5.1.3"),
    ],
)
def test_refusals(pli: RunningPli, sender: str, rcpt: str, code: int, enhanced: bytes) -> None:
    with _smtp(pli) as s:
        got, msg = s.mail(sender)
        if got == 250:
            got, msg = s.rcpt(rcpt)
        assert got == code, msg
        assert msg.startswith(enhanced), msg


def test_plain_smtp_without_tls_is_accepted(pli: RunningPli) -> None:
    with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s:
        refused = s.sendmail(NURSE, [GERIATRICIAN], b"Subject: clear\r\n\r\nclear\r\n")
        assert refused == {}


def test_smuggling_bare_lf_refused(pli: RunningPli) -> None:
    with _smtp(pli) as s:
        s.mail(NURSE)
        s.rcpt(GERIATRICIAN)
        smuggled = b"Subject: a\r\n\r\nfirst\n.\nMAIL FROM:<" + NURSE.encode() + b">\r\n"
        code, msg = s.data(smuggled)
        assert code == 554 and b"bare" in msg


def test_tls_floor_is_1_2(pli: RunningPli) -> None:
    ctx = pli.client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with (
        smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s,
        pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)),
    ):
        s.starttls(context=ctx)


def test_user_passwd_and_cli_errors(pli: RunningPli) -> None:
    new = "un-mot-de-passe-solide"
    done = pli.cli("user", "passwd", NURSE, "--stdin", stdin=new + "\n")
    assert done.returncode == 0, done.stderr
    imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
    try:
        imap.starttls(ssl_context=pli.client_context())
        assert imap.login(NURSE, new)[0] == "OK"
        imap.logout()
    finally:
        _close(imap)
    unknown = pli.cli("user", "passwd", "nobody@ch-arras.mssante.fr", "--stdin", stdin=new)
    assert unknown.returncode == 1
    assert unknown.stderr.count("\n") == 1 and "not in the directory" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    usage = pli.cli("user", "nope")
    assert usage.returncode == 2
    shown = pli.cli("directory", "show", GERIATRICIAN)
    assert shown.returncode == 0 and "PER" in shown.stdout


def test_submission_auth_after_tls_and_own_sender_only(pli: RunningPli) -> None:
    with smtplib.SMTP("127.0.0.1", pli.ports["submission"], timeout=30) as s:
        s.ehlo("client.test")
        assert "auth" not in s.esmtp_features  # not even advertised before TLS
        code, _ = s.docmd("AUTH", "PLAIN AGZvbwBiYXI=")
        assert code in (530, 538)
        s.starttls(context=pli.client_context())
        s.ehlo("client.test")
        assert "PLAIN" in s.esmtp_features.get("auth", "")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login(GERIATRICIAN, "wrong-password-1234")
        s.login(GERIATRICIAN, pli.accounts[GERIATRICIAN])
        code, msg = s.mail(NURSE)  # someone else's address
        assert code == 553 and msg.startswith(b"5.7.1"), msg
        s.rset()
        code, msg = s.mail(GERIATRICIAN)
        assert code == 250, msg
        code, msg = s.rcpt("dr.paul.durand@ehpad-les-tilleuls.mssante.fr")
        assert code == 250, msg
        code, msg = s.data(b"Subject: reply\r\n\r\nMerci\r\n")
        assert code == 250 and b"id=" in msg


def test_submission_as_a_delegated_shared_mailbox(pli: RunningPli) -> None:
    import time

    secretariat = "secretariat.geriatrie@ch-arras.mssante.fr"
    with smtplib.SMTP("127.0.0.1", pli.ports["submission"], timeout=30) as s:
        s.starttls(context=pli.client_context())
        s.login(GERIATRICIAN, pli.accounts[GERIATRICIAN])
        code, msg = s.mail(secretariat)
        assert code == 553 and msg.startswith(b"5.7.1"), msg  # not delegated yet
        s.rset()
        granted = pli.cli("directory", "delegate", secretariat, GERIATRICIAN)
        assert granted.returncode == 0, granted.stderr
        # The running server's cache notices the change generation within a second.
        deadline = time.monotonic() + 5
        while (code := s.mail(secretariat)[0]) != 250 and time.monotonic() < deadline:
            s.rset()
            time.sleep(0.2)
        assert code == 250
        assert s.rcpt(NURSE)[0] == 250
        code, msg = s.data(b"Subject: rdv\r\n\r\nRendez-vous confirm\xc3\xa9\r\n")
        assert code == 250, msg


def test_submission_requires_auth(pli: RunningPli) -> None:
    with smtplib.SMTP("127.0.0.1", pli.ports["submission"], timeout=30) as s:
        s.starttls(context=pli.client_context())
        s.ehlo("client.test")
        code, _ = s.mail(GERIATRICIAN)
        assert code == 530


def test_swaks_delivers(pli: RunningPli) -> None:
    swaks = shutil.which("swaks")
    assert swaks, "swaks missing: `make test` installs it (deploy/dev/apt-deps.sh)"
    marker = uuid.uuid4().hex
    done = subprocess.run(
        [
            swaks,
            "--server",
            f"127.0.0.1:{pli.ports['smtp']}",
            "-tls",
            "--ehlo",
            "swaks.test",
            "--from",
            "jean.petit@medecin.mssante.fr",
            "--to",
            "cabinet.petit@medecin.mssante.fr",
            "--body",
            f"swaks {marker}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "250 2.0.0 OK id=" in done.stdout
    imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
    try:
        imap.starttls(ssl_context=pli.client_context())
        imap.login(
            "cabinet.petit@medecin.mssante.fr", pli.accounts["cabinet.petit@medecin.mssante.fr"]
        )
        typ, data = imap.select("INBOX")
        typ, fetched = imap.fetch((data[0] or b"1").decode(), "(BODY.PEEK[TEXT])")
        assert typ == "OK" and isinstance(fetched[0], tuple)
        assert marker.encode() in fetched[0][1]
        imap.logout()
    finally:
        _close(imap)


def test_a_peer_mta_may_push_many_messages_on_one_connection(pli: RunningPli) -> None:
    # aiosmtpd's call limit once capped MAIL at 200 per connection (421 after).
    with _smtp(pli) as s:
        for i in range(205):
            code, msg = s.mail(NURSE)
            assert code == 250, (i, msg)
            s.rcpt("dr.paul.durand@ehpad-les-tilleuls.mssante.fr")
            code, msg = s.data(f"Subject: n{i}\r\n\r\nx\r\n".encode())
            assert code == 250, (i, msg)


def test_health_endpoints(pli: RunningPli) -> None:
    base = f"http://127.0.0.1:{pli.ports['http']}"
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as r:  # noqa: S310 (loopback)
        assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
    with urllib.request.urlopen(f"{base}/readyz", timeout=10) as r:  # noqa: S310 (loopback)
        assert r.status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/nope", timeout=10)  # noqa: S310 (loopback)
    assert err.value.code == 404


def _imap_login(pli: RunningPli, user: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
    imap.starttls(ssl_context=pli.client_context())
    assert imap.login(user, pli.accounts[user])[0] == "OK"
    return imap


def _last(imap: imaplib.IMAP4, mailbox: str, items: str) -> bytes:
    typ, data = imap.select(mailbox)
    assert typ == "OK", data
    typ, fetched = imap.fetch((data[0] or b"1").decode(), items)
    assert typ == "OK"
    parts = [p for p in fetched if p is not None]
    assert len(parts) == len(fetched)
    return b"".join(p[0] + p[1] if isinstance(p, tuple) else p for p in parts)


def test_implicit_tls_submission_sent_copy_and_message_id(pli: RunningPli) -> None:
    marker = uuid.uuid4().hex  # to the GP: no other test changes his password
    raw = (
        f"From: {GERIATRICIAN}\r\nTo: {GP}\r\nSubject: {marker}\r\n\r\nSans Message-ID\r\n"
    ).encode()
    with smtplib.SMTP_SSL(
        "127.0.0.1", pli.ports["submission_tls"], context=pli.client_context(), timeout=30
    ) as s:
        s.ehlo("client.test")
        assert "starttls" not in s.esmtp_features  # TLS from the first byte: nothing to start
        s.login(GERIATRICIAN, pli.accounts[GERIATRICIAN])
        assert s.sendmail(GERIATRICIAN, [GP], raw) == {}
    sender = _imap_login(pli, GERIATRICIAN)
    try:
        typ, boxes = sender.list()
        assert typ == "OK" and any(
            isinstance(b, bytes) and (b'"Sent"' in b or b" Sent" in b) for b in boxes
        ), boxes
        sent = _last(sender, "Sent", "(FLAGS BODY.PEEK[HEADER])")
        assert b"\\Seen" in sent and marker.encode() in sent
        assert b"with ESMTPSA" in sent  # RFC 3848: TLS and authenticated
        message_id = next(
            line for line in sent.split(b"\r\n") if line.lower().startswith(b"message-id:")
        )
    finally:
        _close(sender)
    nurse = _imap_login(pli, GP)
    try:
        received = _last(nurse, "INBOX", "(BODY.PEEK[HEADER])")
        assert marker.encode() in received and message_id in received  # the same id
        assert received.lower().count(b"message-id:") == 1
    finally:
        _close(nurse)


def test_an_existing_message_id_is_kept(pli: RunningPli) -> None:
    msg = _message("avec id", "corps")
    msg["Message-ID"] = "<kept.1234@ehpad-les-tilleuls.mssante.fr>"
    with _smtp(pli) as s:
        assert s.send_message(msg) == {}
    imap = _imap_login(pli, GERIATRICIAN)
    try:
        head = _last(imap, "INBOX", "(BODY.PEEK[HEADER])")
        assert b"<kept.1234@ehpad-les-tilleuls.mssante.fr>" in head
        assert head.lower().count(b"message-id:") == 1
    finally:
        _close(imap)


def test_ehlo_extensions_enhanced_codes_and_pipelining(pli: RunningPli) -> None:
    import socket

    with _smtp(pli) as s:
        for ext in ("pipelining", "enhancedstatuscodes", "8bitmime", "smtputf8", "size"):
            assert ext in s.esmtp_features, ext
        assert s.noop() == (250, b"2.0.0 OK")
        code, msg = s.docmd("RCPT", f"TO:<{GERIATRICIAN}>")  # before MAIL
        assert code == 503 and msg.startswith(b"5.5.1"), msg
        code, msg = s.docmd("FROB")
        assert code == 500 and msg.startswith(b"5.5.2"), msg
    # A pipelining client sends the whole envelope in one write (RFC 2920).
    with socket.create_connection(("127.0.0.1", pli.ports["smtp"]), timeout=30) as raw:
        f = raw.makefile("rb")
        assert f.readline().startswith(b"220")
        raw.sendall(b"EHLO pipe.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        raw.sendall(f"MAIL FROM:<{NURSE}>\r\nRCPT TO:<{GERIATRICIAN}>\r\nDATA\r\n".encode())
        replies = [f.readline() for _ in range(3)]
        assert [r[:3] for r in replies] == [b"250", b"250", b"354"], replies
        raw.sendall(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        assert f.readline().startswith(b"250 2.0.0 OK id=")
        assert f.readline().startswith(b"221")
