"""mbsync (isync), a real synchronising client, against a real pli server: both ways.

A message in pli reaches the local Maildir; a message dropped in the Maildir
reaches pli through APPEND (UIDPLUS); a flag set on either side shows on the
other. Also the implicit-TLS listener with imaplib, and IDLE woken by SMTP mail.
"""

from __future__ import annotations

import imaplib
import shutil
import smtplib
import subprocess
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.running import RunningPli, start_pli, stop_pli
from tests.support.datadir import DemoDataDirs

USER = "sophie.bernard@ch-arras.mssante.fr"
SENDER = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
MBSYNC = shutil.which("mbsync")

pytestmark = [
    pytest.mark.skipif(MBSYNC is None, reason="mbsync (isync) is not installed"),
    pytest.mark.slow,
]  # end to end: a real `pli serve` process


@pytest.fixture(scope="module")
def pli(tmp_path_factory: pytest.TempPathFactory, demo_dirs: DemoDataDirs) -> Iterator[RunningPli]:
    running = start_pli(demo_dirs.copy(tmp_path_factory.mktemp("pli") / "var"))
    try:
        yield running
    finally:
        stop_pli(running)


def _imap(pli: RunningPli) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
    client.starttls(ssl_context=pli.client_context())
    assert client.login(USER, pli.accounts[USER])[0] == "OK"
    return client


def _mbsync(pli: RunningPli, home: Path) -> None:
    config = home / "mbsyncrc"
    (home / "mail").mkdir(exist_ok=True)
    config.write_text(f"""
IMAPAccount pli
Host localhost
Port {pli.ports["imap"]}
User {USER}
Pass "{pli.accounts[USER]}"
SSLType STARTTLS
CertificateFile {pli.cafile}
AuthMechs PLAIN

IMAPStore pli-remote
Account pli

MaildirStore local
Path {home}/mail/
Inbox {home}/mail/INBOX
SubFolders Verbatim

Channel pli
Far :pli-remote:
Near :local:
Patterns INBOX Sent
Create Both
Expunge Both
SyncState *
Sync All
""")
    run = subprocess.run(
        [str(MBSYNC), "-c", str(config), "-a"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(home)},
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _maildir(home: Path) -> list[Path]:
    box = home / "mail" / "INBOX"
    return sorted(p for sub in ("cur", "new") for p in (box / sub).glob("*"))


def test_mbsync_both_ways(pli: RunningPli, tmp_path: Path) -> None:
    client = _imap(pli)
    try:
        seed = b"From: a@b.fr\r\nTo: " + USER.encode() + b"\r\nSubject: seed\r\n\r\nfrom pli\r\n"
        typ, data = client.append("INBOX", "", imaplib.Time2Internaldate(time.time()), seed)
        assert typ == "OK" and b"APPENDUID" in data[0]
        _mbsync(pli, tmp_path)
        files = _maildir(tmp_path)
        assert len(files) == 1  # mbsync adds its own X-TUID header to the local copy
        assert b"Subject: seed\n" in files[0].read_bytes()
        assert files[0].read_bytes().endswith(b"\n\nfrom pli\n")
        # Maildir → pli (APPEND), and a flag set locally (Seen) → pli (UID STORE).
        new = tmp_path / "mail" / "INBOX" / "new" / "1700000000.42_1.local"
        new.write_bytes(b"From: me@x.fr\nSubject: from maildir\n\nwritten locally\n")
        seen = files[0].with_name(files[0].name.split(":")[0] + ":2,S")
        files[0].rename(seen.parent.parent / "cur" / seen.name)
        # pli → Maildir: a flag set on the server.
        client.select("INBOX")
        assert client.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
        _mbsync(pli, tmp_path)
        assert client.select("INBOX")[1] == [b"2"]
        _, got = client.fetch("1:2", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        flags: list[Any] = list(got)
        text = b" ".join(p[0] if isinstance(p, tuple) else p for p in flags)
        assert b"\\Seen" in text and b"\\Flagged" in text
        assert b"Subject: from maildir" in b"".join(p[1] for p in flags if isinstance(p, tuple))
        names = [f.name for f in _maildir(tmp_path)]
        assert len(names) == 2 and any(n.endswith((":2,FS", ":2,SF")) for n in names)
        # Deleting locally expunges on the server (Expunge Both).
        for f in _maildir(tmp_path):
            if "from maildir" in f.read_text():
                f.unlink()
        _mbsync(pli, tmp_path)
        assert client.select("INBOX")[1] == [b"1"]
    finally:
        client.logout()
    audit = pli.cli("audit", "query", "--actor", USER)
    assert "message.appended" in audit.stdout and "message.expunged" in audit.stdout


def test_implicit_tls_and_idle_woken_by_smtp(pli: RunningPli) -> None:
    client = imaplib.IMAP4_SSL(
        "127.0.0.1", pli.ports["imaps"], ssl_context=pli.client_context(), timeout=30
    )
    try:
        assert "STARTTLS" not in client.capabilities and "IDLE" in client.capabilities
        assert client.login(USER, pli.accounts[USER])[0] == "OK"
        _, data = client.select("INBOX")
        before = int(data[0] or b"0")
        tag = client._new_tag()  # imaplib has no IDLE: speak it on its socket
        client.send(tag + b" IDLE\r\n")
        assert client.readline().startswith(b"+")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = SENDER, USER, "wake up"
        msg.set_content("idle test")
        with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s:
            s.starttls(context=pli.client_context())
            assert s.send_message(msg) == {}
        client.sock.settimeout(10)  # woken by the commit, not by the 30 s poll
        assert client.readline() == b"* %d EXISTS\r\n" % (before + 1)
        client.send(b"DONE\r\n")
        while not (line := client.readline()).startswith(tag):
            pass
        assert line.startswith(tag + b" OK")
    finally:
        client.logout()
