"""Protocol transcripts for SEARCH, EXPUNGE, COPY/MOVE, APPEND, mailbox management, IDLE,
NAMESPACE, ENABLE, SPECIAL-USE and CONDSTORE over the real listener (in-memory backend)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from gateway.base.tls import make_dev_certificate, server_context
from gateway.imap.server import ImapLimits, start_imap
from tests.imap.conftest import Listener
from tests.imap.memory_backend import SHARED, USER, MemoryBackend
from tests.imap.wire import Conn


async def _selected(imap: Listener, box: str = "INBOX") -> Conn:
    c = await Conn.logged_in(imap.port, imap.client_ctx)
    assert (await c.run("s", f"SELECT {box}"))[-1].startswith(b"s OK")
    return c


async def test_search_keys(imap: Listener) -> None:
    c = await _selected(imap)
    await c.run("f", "STORE 2 +FLAGS (\\Flagged $Label1)")
    cases = {
        "ALL": b"* SEARCH 1 2 3",
        "FLAGGED": b"* SEARCH 2",
        "UNFLAGGED": b"* SEARCH 1 3",
        "KEYWORD $label1": b"* SEARCH 2",
        "UNSEEN": b"* SEARCH 1 2 3",
        "SEEN": b"* SEARCH",
        'SUBJECT "MESSAGE 3"': b"* SEARCH 3",
        "FROM a@b.fr NOT 1": b"* SEARCH 2 3",
        "OR 1 3": b"* SEARCH 1 3",
        "(2:3 NOT FLAGGED)": b"* SEARCH 3",
        'BODY "number 2"': b"* SEARCH 2",
        'TEXT "message 1"': b"* SEARCH 1",
        "HEADER Message-ID <3@test>": b"* SEARCH 3",
        "LARGER 1 SMALLER 100000": b"* SEARCH 1 2 3",
        "SINCE 23-Nov-2026 BEFORE 24-Nov-2026": b"* SEARCH 1 2 3",
        "ON 1-Jan-2020": b"* SEARCH",
        "SENTON 23-Nov-2026": b"* SEARCH 1 2 3",
        "UID 2:*": b"* SEARCH 2 3",
        "CHARSET UTF-8 SUBJECT message": b"* SEARCH 1 2 3",
        "NEW": b"* SEARCH",
        "*": b"* SEARCH 3",
    }
    for n, (key, want) in enumerate(cases.items()):
        lines = await c.run(f"q{n}", f"SEARCH {key}")
        assert lines == [want + b"\r\n", f"q{n} OK SEARCH completed\r\n".encode()], key
    assert (await c.run("u", "UID SEARCH FLAGGED"))[0] == b"* SEARCH 2\r\n"
    for bad in ("FROBNICATE", "OR 1", "BEFORE 31-Feb-2026", "LARGER x", "UID 0", ""):
        assert (await c.run("b", f"SEARCH {bad}".rstrip()))[-1].startswith(b"b BAD"), bad
    assert (await c.run("cs", "SEARCH CHARSET KOI8-R ALL"))[-1].startswith(
        b"cs NO [BADCHARSET (US-ASCII UTF-8)]"
    )
    c.close()


async def test_expunge_and_uid_expunge(imap: Listener) -> None:
    c = await _selected(imap)
    await c.run("d", "STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    assert await c.run("u", "UID EXPUNGE 2") == [
        b"* 2 EXPUNGE\r\n",
        b"u OK UID EXPUNGE completed\r\n",
    ]
    assert await c.run("e", "EXPUNGE") == [
        b"* 2 EXPUNGE\r\n",
        b"* 1 EXPUNGE\r\n",
        b"e OK EXPUNGE completed\r\n",
    ]
    assert [a for a, _, _ in imap.backend.audit] == ["message.expunged"] * 3
    assert (await c.run("x", "EXAMINE INBOX"))[-1].startswith(b"x OK [READ-ONLY]")
    assert (await c.run("y", "EXPUNGE"))[-1].startswith(b"y NO [READ-ONLY]")
    c.close()


async def test_copy_move_with_copyuid(imap: Listener) -> None:
    c = await _selected(imap)
    assert await c.run("c", "COPY 1:2 Trash") == [b"c OK [COPYUID 1234 1:2 1:2] COPY completed\r\n"]
    assert await c.run("m", "UID MOVE 1,3 Trash") == [
        b"* OK [COPYUID 1234 1,3 3:4] Moved\r\n",
        b"* 3 EXPUNGE\r\n",
        b"* 1 EXPUNGE\r\n",
        b"m OK UID MOVE completed\r\n",
    ]
    assert (await c.run("f", "FETCH 1:* UID")) == [
        b"* 1 FETCH (UID 2)\r\n",
        b"f OK FETCH completed\r\n",
    ]
    assert (await c.run("t", "COPY 1 Nowhere"))[
        -1
    ] == b"t NO [TRYCREATE] No such destination mailbox\r\n"
    assert (await c.run("n", "UID COPY 99 Trash"))[-1].startswith(b"n OK")
    status = await c.run("st", "STATUS Trash (MESSAGES UIDNEXT)")
    assert status[0] == b'* STATUS "Trash" (MESSAGES 4 UIDNEXT 5)\r\n'
    c.close()


async def test_append_appenduid_and_literal_plus(imap: Listener) -> None:
    c = await _selected(imap)
    msg = b"From: me@x.fr\r\nSubject: draft\r\n\r\nhello\r\n"
    await c.send(
        b'a APPEND Drafts (\\Draft \\Seen) "05-Jan-2026 10:00:00 +0100" {%d}\r\n' % len(msg)
    )
    assert (await c.line()).startswith(b"+ ")
    await c.send(msg + b"\r\n")
    assert await c.until_tagged(b"a") == [b"a OK [APPENDUID 1234 1] APPEND completed\r\n"]
    stored = imap.backend.users[USER]["Drafts"].msgs[1]
    assert stored.data == msg and stored.flags == {"\\Draft", "\\Seen"}
    assert stored.date.isoformat() == "2026-01-05T10:00:00+01:00"
    # LITERAL+ into the selected mailbox: no continuation, and the new message is announced.
    assert await c.run("b", b"APPEND INBOX {%d+}\r\n" % len(msg) + msg) == [
        b"* 4 EXISTS\r\n",
        b"* 0 RECENT\r\n",
        b"b OK [APPENDUID 1234 4] APPEND completed\r\n",
    ]
    assert (await c.run("n", b"APPEND Nowhere {1+}\r\nx"))[-1].startswith(b"n NO [TRYCREATE]")
    assert (await c.run("d", b'APPEND INBOX "bad date" {1+}\r\nx'))[-1].startswith(b"d BAD")
    c.close()


async def test_mailbox_management_list_lsub_namespace(imap: Listener) -> None:
    c = await Conn.logged_in(imap.port, imap.client_ctx)
    assert (await c.run("c", "CREATE Projets/2026/"))[-1] == b"c OK CREATE completed\r\n"
    assert (await c.run("c2", "CREATE Projets/2026"))[-1].startswith(b"c2 NO [ALREADYEXISTS]")
    assert (await c.run("c3", "CREATE INBOX"))[-1].startswith(b"c3 NO [ALREADYEXISTS]")
    lines = await c.run("l", 'LIST "" "*"')
    assert b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n' in lines
    assert b'* LIST (\\Noselect \\HasChildren) "/" "Projets"\r\n' in lines
    assert b'* LIST (\\HasNoChildren) "/" "Projets/2026"\r\n' in lines
    assert b'* LIST (\\HasNoChildren) "/" "Shared/' + SHARED.encode() + b'/INBOX"\r\n' in lines
    assert await c.run("p", 'LIST "" "%"') == [
        b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n',
        b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n',
        b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n',
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n',
        b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n',
        b'* LIST (\\Noselect \\HasChildren) "/" "Projets"\r\n',
        b'* LIST (\\Noselect \\HasChildren) "/" "Shared"\r\n',
        b"p OK LIST completed\r\n",
    ]
    special = await c.run("su", 'LIST (SPECIAL-USE) "" "*"')
    assert len(special) == 5 and all(b"\\HasNoChildren \\" in ln for ln in special[:4])
    assert (await c.run("r", "RENAME Projets/2026 Archive"))[-1] == b"r OK RENAME completed\r\n"
    assert (await c.run("us", "UNSUBSCRIBE Junk"))[-1].startswith(b"us OK")
    lsub = await c.run("ls", 'LSUB "" "*"')
    assert b'* LSUB (\\HasNoChildren) "/" "Archive"\r\n' in lsub
    assert not any(b'"Junk"' in ln for ln in lsub)
    ret = await c.run("lr", 'LIST "" "J*" RETURN (SUBSCRIBED)')
    assert ret[0] == b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n'
    assert (await c.run("d", "DELETE Archive"))[-1] == b"d OK DELETE completed\r\n"
    assert (await c.run("d2", "DELETE Archive"))[-1].startswith(b"d2 NO [NONEXISTENT]")
    assert (await c.run("d3", "DELETE INBOX"))[-1].startswith(b"d3 NO [CANNOT]")
    assert await c.run("ns", "NAMESPACE") == [
        b'* NAMESPACE (("" "/")) NIL (("Shared/" "/"))\r\n',
        b"ns OK NAMESPACE completed\r\n",
    ]
    assert await c.run("en", "ENABLE CONDSTORE QRESYNC") == [
        b"* ENABLED CONDSTORE\r\n",
        b"en OK ENABLE completed\r\n",
    ]
    c.close()


async def test_shared_mailbox_of_a_delegated_user(imap: Listener) -> None:
    c = await _selected(imap, f'"Shared/{SHARED}/INBOX"')
    lines = await c.run("f", "FETCH 1 BODY.PEEK[TEXT]")
    assert lines[0] == b"* 1 FETCH (BODY[TEXT] {8}\r\n" and lines[1] == b"shared\r\n"
    assert (await c.run("o", 'SELECT "Shared/jean.petit@medecin.mssante.fr/INBOX"'))[-1].startswith(
        b"o NO [NONEXISTENT]"
    )
    c.close()


async def test_idle_woken_by_new_mail(imap: Listener) -> None:
    c = await _selected(imap)
    await c.send(b"i IDLE\r\n")
    assert await c.line() == b"+ idling\r\n"
    other = await Conn.logged_in(imap.port, imap.client_ctx)
    assert (await other.run("a", b"APPEND INBOX {10+}\r\nSubject:\r\n"))[-1].startswith(b"a OK")
    assert await c.line() == b"* 4 EXISTS\r\n"
    assert await c.line() == b"* 0 RECENT\r\n"
    await other.run("s", "SELECT INBOX")
    await other.run("f", "STORE 1 +FLAGS (\\Flagged)")
    assert await c.line() == b"* 1 FETCH (FLAGS (\\Flagged) UID 1)\r\n"
    await c.send(b"DONE\r\n")
    assert await c.line() == b"i OK IDLE terminated\r\n"
    assert imap.backend.notifier.watchers() == 0
    other.close()
    c.close()


async def test_condstore(imap: Listener) -> None:
    c = await Conn.logged_in(imap.port, imap.client_ctx)
    sel = await c.run("s", "SELECT INBOX (CONDSTORE)")
    assert b"* OK [HIGHESTMODSEQ 4] Highest\r\n" in sel
    assert await c.run("f", "FETCH 1:* (FLAGS) (CHANGEDSINCE 3)") == [
        b"* 3 FETCH (FLAGS () MODSEQ (4))\r\n",
        b"f OK FETCH completed\r\n",
    ]
    assert await c.run("a", "STORE 1 (UNCHANGEDSINCE 2) +FLAGS (\\Seen)") == [
        b"* 1 FETCH (FLAGS (\\Seen) MODSEQ (5))\r\n",
        b"a OK STORE completed\r\n",
    ]
    assert await c.run("b", "UID STORE 1:2 (UNCHANGEDSINCE 3) +FLAGS.SILENT (\\Flagged)") == [
        b"* 2 FETCH (FLAGS (\\Flagged) UID 2 MODSEQ (6))\r\n",
        b"b OK [MODIFIED 1] Conditional STORE failed for some\r\n",
    ]
    assert await c.run("q", "SEARCH MODSEQ 5") == [
        b"* SEARCH 1 2 (MODSEQ 6)\r\n",
        b"q OK SEARCH completed\r\n",
    ]
    assert (await c.run("st", "STATUS INBOX (HIGHESTMODSEQ)"))[
        0
    ] == b'* STATUS "INBOX" (HIGHESTMODSEQ 6)\r\n'
    assert await c.run("m", "FETCH 2 (MODSEQ)") == [
        b"* 2 FETCH (MODSEQ (6))\r\n",
        b"m OK FETCH completed\r\n",
    ]
    c.close()


async def test_implicit_tls_listener(tmp_path: Path) -> None:
    cert, key = make_dev_certificate(tmp_path / "tls", ["localhost", "127.0.0.1"])
    server = await start_imap(
        MemoryBackend(),
        host="127.0.0.1",
        port=0,
        tls_context=server_context(cert, key),
        implicit_tls=True,
        limits=ImapLimits(max_connections=2),
    )
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        r, w = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1], ssl=ctx
        )
        c = Conn(r, w)
        greeting = await c.line()
        assert b"AUTH=PLAIN" in greeting and b"STARTTLS" not in greeting
        assert (await c.run("s", "STARTTLS"))[-1].startswith(b"s BAD")
        await c.login()
        c.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_acl_on_a_shared_mailbox(imap: Listener) -> None:
    c = await Conn.logged_in(imap.port, imap.client_ctx)
    box = f'"Shared/{SHARED}/INBOX"'
    assert await c.run("m", "MYRIGHTS INBOX") == [
        b'* MYRIGHTS "INBOX" "lrswipkxtea"\r\n',
        b"m OK MYRIGHTS completed\r\n",
    ]
    assert (await c.run("m2", f"MYRIGHTS {box}"))[0].endswith(b' "lrswipkxte"\r\n')
    assert (await c.run("g", f"GETACL {box}"))[-1] == b"g NO [NOPERM] Missing right a\r\n"
    assert (await c.run("s", f"SETACL {box} {USER} lr"))[-1].startswith(b"s NO [NOPERM]")
    assert (await c.run("p", "SETACL INBOX someone@x.fr lr"))[-1].startswith(b"p NO [CANNOT]")
    assert (await c.run("b", "SETACL INBOX someone@x.fr lrZ"))[-1].startswith(b"b BAD")
    # An operator made the user an administrator of the shared mailbox, read-only otherwise.
    imap.backend.acl[SHARED, USER] = "lra"
    assert (await c.run("g2", f"GETACL {box}"))[0] == (
        b'* ACL "Shared/'
        + SHARED.encode()
        + b'/INBOX" "'
        + SHARED.encode()
        + b'" "lrswipkxtea" "'
        + USER.encode()
        + b'" "lra"\r\n'
    )
    assert (await c.run("s2", f"SETACL {box} {USER} +c"))[-1] == b"s2 OK SETACL completed\r\n"
    assert imap.backend.acl[SHARED, USER] == "lrka"
    assert (await c.run("l", f"LISTRIGHTS {box} {USER}"))[0].endswith(
        b'"" l r s w i p k x t e a\r\n'
    )
    assert (await c.run("s3", f"SETACL {box} {USER} -k"))[-1].startswith(b"s3 OK")
    assert (await c.run("sel", f"SELECT {box}"))[-1] == b"sel OK [READ-ONLY] SELECT completed\r\n"
    assert (await c.run("st", "STORE 1 +FLAGS (\\Seen)"))[-1].startswith(b"st NO [READ-ONLY]")
    assert (await c.run("ap", f"APPEND {box} {{1+}}\r\nx"))[-1].startswith(b"ap NO [NOPERM]")
    assert (await c.run("d", f"DELETEACL {box} {USER}"))[-1].startswith(b"d OK")
    assert (SHARED, USER) not in imap.backend.acl
    c.close()
