"""`pli vault verify|rotate-kek` and `pli audit export` against a running server."""

from __future__ import annotations

import imaplib
import itertools
import json
import smtplib
import ssl
import uuid

from tests.gateway.running import RunningPli

NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
GP = "jean.petit@medecin.mssante.fr"


def _ctx(pli: RunningPli) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pli.cafile))
    ctx.check_hostname = False
    return ctx


def _send(pli: RunningPli, marker: str) -> None:
    with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s:
        s.starttls(context=_ctx(pli))
        s.sendmail(NURSE, [GP], f"Subject: {marker}\r\n\r\n{marker}\r\n".encode())


def _read_all(pli: RunningPli) -> bytes:
    imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
    try:
        imap.starttls(ssl_context=_ctx(pli))
        imap.login(GP, pli.accounts[GP])
        _, data = imap.select("INBOX")
        _, fetched = imap.fetch(f"1:{int(data[0] or 0)}", "(BODY.PEEK[])")
        return b"".join(p[1] for p in fetched if isinstance(p, tuple))
    finally:
        imap.shutdown()


def test_rotation_under_a_running_server_then_verify(pli: RunningPli) -> None:
    before, after = uuid.uuid4().hex, uuid.uuid4().hex
    _send(pli, before)
    kek = pli.data_dir / "keys" / "kek.key"
    old = kek.read_text()
    rotated = pli.cli("vault", "rotate-kek")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-wrapped" in rotated.stdout and kek.read_text() != old
    assert old.strip() not in rotated.stdout + rotated.stderr  # a key is never printed
    _send(pli, after)
    both = _read_all(pli)  # the server picked the new key file up by itself
    assert before.encode() in both and after.encode() in both
    dropped = pli.cli("vault", "rotate-kek", "--resume", "--drop-unused")
    assert dropped.returncode == 0, dropped.stderr
    assert len(kek.read_text().split()) == 1
    assert before.encode() in _read_all(pli)
    verified = pli.cli("vault", "verify")
    assert verified.returncode == 0 and " 0 failed" in verified.stdout, verified.stderr


def test_audit_export_is_checkable_outside_pli(pli: RunningPli) -> None:
    _send(pli, uuid.uuid4().hex)
    done = pli.cli("audit", "export")
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    assert entries and entries[0]["seq"] == 1
    for prev, cur in itertools.pairwise(entries):
        assert cur["prev_hash"] == prev["hash"] and cur["seq"] == prev["seq"] + 1
    assert all(len(e["hash"]) == 64 for e in entries)
    assert "message.accepted" in {e["action"] for e in entries}
    only = pli.cli("audit", "export", "--action", "message.accepted")
    assert {json.loads(line)["action"] for line in only.stdout.splitlines()} == \
        {"message.accepted"}
    assert pli.cli("audit", "verify").returncode == 0


def test_checkpoints_are_signed_and_verified(pli: RunningPli) -> None:
    _send(pli, uuid.uuid4().hex)
    signed = pli.cli("audit", "checkpoint")
    assert signed.returncode == 0 and "checkpoint signed at entry" in signed.stdout
    pub = pli.data_dir / "keys" / "audit-signing.pub"
    assert pub.exists() and (pli.data_dir / "keys" / "audit-signing.key").stat().st_mode \
        & 0o077 == 0
    verified = pli.cli("audit", "verify", "--public-key", str(pub))
    assert verified.returncode == 0 and "signed checkpoints verified" in verified.stdout
