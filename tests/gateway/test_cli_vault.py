"""`pli vault verify|rotate-kek` and `pli audit export` against a running server."""

from __future__ import annotations

import imaplib
import itertools
import json
import smtplib
import uuid

import pytest

from tests.gateway.running import RunningPli

pytestmark = pytest.mark.slow  # end to end: a real `pli serve` process

NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
GP = "jean.petit@medecin.mssante.fr"


def _send(pli: RunningPli, marker: str) -> None:
    with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s:
        s.starttls(context=pli.client_context())
        s.sendmail(NURSE, [GP], f"Subject: {marker}\r\n\r\n{marker}\r\n".encode())


def _read_all(pli: RunningPli) -> bytes:
    imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
    try:
        imap.starttls(ssl_context=pli.client_context())
        imap.login(GP, pli.accounts[GP])
        _, data = imap.select("INBOX")
        if not int(data[0] or 0):
            return b""
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
    dropped = pli.cli("vault", "rotate-kek", "--resume", "--drop-unused", "--settle", "1.5")
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
    assert {json.loads(line)["action"] for line in only.stdout.splitlines()} == {"message.accepted"}
    assert pli.cli("audit", "verify").returncode == 0


def test_checkpoints_are_signed_and_verified(pli: RunningPli) -> None:
    _send(pli, uuid.uuid4().hex)
    signed = pli.cli("audit", "checkpoint")
    assert signed.returncode == 0 and "checkpoint signed at entry" in signed.stdout
    pub = pli.data_dir / "keys" / "audit-signing.pub"
    assert (
        pub.exists() and (pli.data_dir / "keys" / "audit-signing.key").stat().st_mode & 0o077 == 0
    )
    verified = pli.cli("audit", "verify", "--public-key", str(pub))
    assert verified.returncode == 0 and "1 signed checkpoints and" in verified.stdout


def _send_with_id(pli: RunningPli, marker: str) -> str:
    with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s:
        s.starttls(context=pli.client_context())
        s.ehlo()
        s.mail(NURSE)
        s.rcpt(GP)
        code, reply = s.data(f"Subject: {marker}\r\n\r\n{marker}\r\n".encode())
    assert code == 250
    return reply.decode().split()[-1].strip("<>[]").removeprefix("id=")


def _age_everything(pli: RunningPli) -> None:
    """Time passes: every retention date moves 21 years into the past."""
    import sqlite3

    with sqlite3.connect(pli.data_dir / "pli.db") as db:
        db.execute("UPDATE vault_object SET retain_until = '2005-01-01 00:00:00.000000'")


def test_hold_then_purge_after_retention(pli: RunningPli) -> None:
    held_marker, free_marker = uuid.uuid4().hex, uuid.uuid4().hex
    held_id = _send_with_id(pli, held_marker)
    _send_with_id(pli, free_marker)
    placed = pli.cli(
        "vault", "hold", "place", "--message", held_id, "--reason", "contentieux 2026-17"
    )
    assert placed.returncode == 0, placed.stderr
    hold_id, held = placed.stdout.split()[1], placed.stdout.split()[4]  # body + receipts
    listed = pli.cli("vault", "hold", "list")
    assert f"{hold_id}" in listed.stdout and "contentieux 2026-17" in listed.stdout

    early = pli.cli("vault", "purge", "--dry-run")
    assert early.returncode == 0 and early.stdout.startswith("0 objects past retention")
    _age_everything(pli)
    purged = pli.cli("vault", "purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    text = _read_all(pli)
    assert held_marker.encode() in text  # the hold kept it
    assert free_marker.encode() not in text  # past retention: gone from the mailbox
    assert "messages removed" in purged.stdout

    released = pli.cli("vault", "hold", "release", hold_id)
    assert released.returncode == 0 and f"{held} objects no longer held" in released.stdout
    again = pli.cli("vault", "hold", "release", hold_id)
    assert again.returncode == 1 and f"no active legal hold {hold_id}" in again.stderr
    assert pli.cli("vault", "purge").returncode == 0
    assert held_marker.encode() not in _read_all(pli)
    exported = pli.cli("audit", "export", "--action", "vault.delete")
    assert exported.stdout.count('"retention-expired"') >= 2
    expired = pli.cli("audit", "export", "--action", "message.expired")
    assert held_id in expired.stdout
    assert held_marker not in exported.stdout + expired.stdout  # no content in the trail


def test_delete_refused_while_retained(pli: RunningPli) -> None:
    msg_id = _send_with_id(pli, uuid.uuid4().hex)
    placed = pli.cli("vault", "hold", "place", "--message", msg_id, "--reason", "x")
    hold_id = placed.stdout.split()[1]
    import sqlite3

    with sqlite3.connect(pli.data_dir / "pli.db") as db:
        [name] = [r[0] for r in db.execute("SELECT blob FROM message WHERE msg_ref = ?", (msg_id,))]
    refused = pli.cli("vault", "delete", name, "--reason", "operator")
    assert refused.returncode == 1
    assert f"refused: object {name} is retained until 20" in refused.stderr
    pli.cli("vault", "hold", "release", hold_id)
    missing = pli.cli("vault", "delete", "0" * 32, "--reason", "operator")
    assert missing.returncode == 1 and "no object 0000" in missing.stderr
    nothing = pli.cli("vault", "hold", "place", "--message", "nonexistent", "--reason", "x")
    assert nothing.returncode == 1 and "nothing to hold" in nothing.stderr
    swept = pli.cli("vault", "sweep", "--dry-run", "--grace", "0")
    assert swept.returncode == 0 and " 0 orphans" in swept.stdout, swept.stdout


def test_sealed_segments_are_verified_and_their_loss_is_named(pli: RunningPli) -> None:
    _send(pli, uuid.uuid4().hex)
    sealed = pli.cli("audit", "seal")
    assert sealed.returncode == 0 and sealed.stdout.startswith("sealed entries "), sealed.stderr
    first, last = sealed.stdout.split()[2].split("..")
    name = sealed.stdout.split()[-1]
    ok = pli.cli("audit", "verify")
    assert ok.returncode == 0 and "sealed segments" in ok.stdout, ok.stderr
    blob = next((pli.data_dir / "vault").rglob(name))
    kept = blob.read_bytes()
    blob.write_bytes(kept[:-1] + bytes([kept[-1] ^ 1]))
    try:
        broken = pli.cli("audit", "verify")
        assert broken.returncode == 1
        assert (
            f"BROKEN at entry {first}: segment {first}..{last}: object unreadable" in broken.stderr
        )
    finally:
        blob.write_bytes(kept)
