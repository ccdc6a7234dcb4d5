"""Replays of what Thunderbird and Roundcube send on connect, open, fetch and move.

The sequences follow these clients' protocol logs (Thunderbird 115:
``MOZ_LOG=IMAP:5``; Roundcube 1.6: ``imap_debug``): lower-case commands, the
SPECIAL-USE LIST, header-field fetches, BODYSTRUCTURE then numbered parts,
IDLE, UID MOVE. Every command must complete OK with the data these clients
parse.
"""

from __future__ import annotations

import base64
import re

from tests.imap.conftest import Listener
from tests.imap.memory_backend import PASSWORD, USER
from tests.imap.wire import Conn

MULTIPART = (
    b"From: Dr Petit <jean.petit@medecin.mssante.fr>\r\nTo: " + USER.encode() + b"\r\n"
    b"Subject: =?utf-8?q?Compte_rendu?=\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\n"
    b"Message-ID: <cr-1@medecin>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVoir la piece jointe.\r\n"
    b"--b1\r\nContent-Type: application/pdf; name=cr.pdf\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=cr.pdf\r\n\r\nJVBERi0xLjQ=\r\n--b1--\r\n"
)


async def _ok(c: Conn, tag: str, command: str | bytes) -> list[bytes]:
    lines = await c.run(tag, command)
    assert lines[-1].startswith(f"{tag} OK".encode()), (command, lines)
    return lines


async def test_thunderbird_session(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    caps = (await _ok(c, "1", "capability"))[0]
    assert b"STARTTLS" in caps and b"LOGINDISABLED" in caps
    await c.starttls(imap.client_ctx)
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    await c.send(b"2 authenticate PLAIN\r\n")
    assert (await c.line()).startswith(b"+")
    await c.send(plain.encode() + b"\r\n")
    assert b"IDLE" in (await c.until_tagged(b"2"))[-1]
    await _ok(c, "3", 'ID ("name" "Thunderbird" "version" "115.6.0")')
    assert (await _ok(c, "4", "enable UTF8=ACCEPT CONDSTORE"))[0] == b"* ENABLED CONDSTORE\r\n"
    await _ok(c, "5", "namespace")
    special = await _ok(c, "6", 'list (SPECIAL-USE) "" "*"')
    assert (
        {
            re.search(rb"\\(Sent|Drafts|Trash|Junk)", ln).group(0)  # type: ignore[union-attr]
            for ln in special[:-1]
        }
        == {b"\\Sent", b"\\Drafts", b"\\Trash", b"\\Junk"}
    )
    await _ok(c, "7", 'lsub "" "*"')
    assert (await _ok(c, "8", 'list "" "INBOX"'))[0] == b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
    await _ok(c, "9", b"APPEND INBOX {%d+}\r\n" % len(MULTIPART) + MULTIPART)
    sel = await _ok(c, "10", 'select "INBOX" (CONDSTORE)')
    assert b"* 4 EXISTS\r\n" in sel and any(b"HIGHESTMODSEQ" in ln for ln in sel)
    flags = await _ok(c, "11", "UID fetch 1:* (FLAGS)")
    assert flags[0] == b"* 1 FETCH (UID 1 FLAGS ())\r\n"
    heads = await _ok(
        c,
        "12",
        "UID fetch 1:4 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS "
        "(From To Cc Bcc Subject Date Message-ID Priority X-Priority "
        "References Newsgroups In-Reply-To Content-Type Reply-To)])",
    )
    assert heads[0].startswith(b"* 1 FETCH (UID 1 RFC822.SIZE ")
    assert b"Subject: =?utf-8?q?Compte_rendu?=\r\n" in heads
    await c.send(b"13 IDLE\r\n")
    assert await c.line() == b"+ idling\r\n"
    await c.send(b"DONE\r\n")
    assert await c.line() == b"13 OK IDLE terminated\r\n"
    structure = await _ok(c, "14", "UID fetch 4 (UID RFC822.SIZE FLAGS BODYSTRUCTURE)")
    assert b'"MIXED" ("BOUNDARY" "b1")' in structure[0]
    part = await _ok(c, "15", "UID fetch 4 (UID BODY.PEEK[2.MIME] BODY.PEEK[2])")
    assert b"JVBERi0xLjQ=" in b"".join(part)
    assert (await _ok(c, "16", "UID store 4 +Flags (\\Seen)"))[0].startswith(
        b"* 4 FETCH (FLAGS (\\Seen) UID 4 MODSEQ ("
    )
    moved = await _ok(c, "17", 'UID move 1 "Trash"')
    assert moved[0].startswith(b"* OK [COPYUID 1234 1 ") and moved[1] == b"* 1 EXPUNGE\r\n"
    await _ok(c, "18", "noop")
    assert (await c.run("19", "logout"))[0].startswith(b"* BYE")
    c.close()


async def test_roundcube_session(imap: Listener) -> None:
    c = await Conn.open(imap.port)
    await _ok(c, "A0001", "CAPABILITY")
    await c.starttls(imap.client_ctx)
    await _ok(c, "A0002", "CAPABILITY")
    plain = base64.b64encode(f"{USER}\0{USER}\0{PASSWORD}".encode()).decode()
    await _ok(c, "A0003", f"AUTHENTICATE PLAIN {plain}")  # SASL-IR
    await _ok(
        c,
        "A0004",
        'ID ("name" "Roundcube" "version" "1.6.6" "php" "8.2.7" "os" "Linux" "command" "/")',
    )
    await _ok(c, "A0005", "NAMESPACE")
    await _ok(c, "A0006", 'LSUB "" "*"')
    listing = await _ok(c, "A0007", 'LIST "" "*"')
    assert b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n' in listing
    await _ok(c, "A0008", b"APPEND INBOX (\\Seen) {%d+}\r\n" % len(MULTIPART) + MULTIPART)
    await _ok(c, "A0009", 'STATUS "INBOX" (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)')
    await _ok(c, "A0010", 'SELECT "INBOX"')
    assert (await _ok(c, "A0011", "UID SEARCH ALL UNDELETED"))[0] == b"* SEARCH 1 2 3 4\r\n"
    dates = await _ok(c, "A0012", "FETCH 1:* (UID INTERNALDATE)")
    assert dates[3].startswith(b'* 4 FETCH (UID 4 INTERNALDATE "')
    await _ok(
        c,
        "A0013",
        "UID FETCH 1:4 (UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK"
        "[HEADER.FIELDS (DATE FROM TO SUBJECT CONTENT-TYPE CC REPLY-TO "
        "LIST-POST DISPOSITION-NOTIFICATION-TO X-PRIORITY)])",
    )
    one = await _ok(
        c,
        "A0014",
        "UID FETCH 4 (UID RFC822.SIZE FLAGS INTERNALDATE BODYSTRUCTURE "
        "BODY.PEEK[HEADER.FIELDS (DATE FROM TO SUBJECT)])",
    )
    assert (
        b'("APPLICATION" "PDF" ("NAME" "cr.pdf") NIL NIL "BASE64" 12 NIL '
        b'("ATTACHMENT" ("FILENAME" "cr.pdf")) NIL NIL)' in one[0]
    )
    text = await _ok(c, "A0015", "UID FETCH 4 (BODY.PEEK[1.MIME] BODY.PEEK[1])")
    assert b"Voir la piece jointe." in b"".join(text)
    assert (await _ok(c, "A0016", "UID STORE 4 +FLAGS.SILENT (\\Flagged)")) == [
        b"A0016 OK UID STORE completed\r\n"
    ]
    found = await _ok(c, "A0017", 'UID SEARCH FLAGGED SUBJECT "compte rendu"')
    assert found[0] == b"* SEARCH 4\r\n"  # matched on the RFC 2047-decoded subject
    moved = await _ok(c, "A0018", 'UID MOVE 4 "Trash"')
    assert moved[0] == b"* OK [COPYUID 1234 4 1] Moved\r\n" and moved[1] == b"* 4 EXPUNGE\r\n"
    await _ok(c, "A0019", 'SELECT "Trash"')
    assert (await _ok(c, "A0020", "UID FETCH 1 (FLAGS)"))[
        0
    ] == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Seen))\r\n"
    await _ok(c, "A0021", "LOGOUT")
    c.close()
