"""Python's imaplib and aioimaplib, real clients, against pli's IMAP server."""

from __future__ import annotations

import asyncio
import imaplib

import aioimaplib

from tests.imap.conftest import Listener
from tests.imap.memory_backend import PASSWORD, USER


def _ok(result: tuple[str, list[object]]) -> list[object]:
    assert result[0] == "OK", result
    return result[1]


def _session(port: int, listener: Listener) -> list[object]:
    seen: list[object] = []
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    assert "STARTTLS" in imap.capabilities and "LOGINDISABLED" in imap.capabilities
    imap.starttls(ssl_context=listener.client_ctx)
    assert "LOGINDISABLED" not in imap.capabilities
    assert imap.login(USER, PASSWORD)[0] == "OK"
    seen.append(imap.list()[1])
    seen.append(_ok(imap.select("INBOX")))
    seen.append(_ok(imap.fetch("1:*", "(FLAGS RFC822.SIZE)")))
    items = "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])"
    seen.append(_ok(imap.uid("FETCH", "2", items)))
    seen.append(_ok(imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")))
    seen.append(_ok(imap.fetch("3", "(BODY[])")))
    seen.append(_ok(imap.fetch("3", "(FLAGS)")))
    seen.append(_ok(imap.status("INBOX", "(MESSAGES UNSEEN UIDNEXT)")))
    assert imap.noop()[0] == "OK"
    imap.logout()
    return seen


async def test_imaplib_full_sequence(imap: Listener) -> None:
    boxes, sel, flags, uidf, fields, body, after, status = await asyncio.to_thread(
        _session, imap.port, imap)
    assert boxes == [b'(\\HasNoChildren) "/" "INBOX"']
    assert sel == [b"3"]
    sizes = {uid: len(m[0]) for uid, m in imap.backend.boxes[USER].items()}
    assert flags == [f"{n} (FLAGS () RFC822.SIZE {sizes[n]})".encode() for n in (1, 2, 3)]
    head = uidf[0]
    assert isinstance(head, tuple) and b"UID 2" in head[0] and head[1].startswith(b"From:")
    assert head[1].endswith(b"\r\n\r\n")
    assert isinstance(fields[0], tuple) and fields[0][1] == b"Subject: message 1\r\n\r\n"
    assert isinstance(body[0], tuple) and b"Body number 3" in body[0][1]
    assert after == [b"3 (FLAGS (\\Seen))"]  # BODY[] sets \Seen, BODY.PEEK[] does not
    assert status == [b'"INBOX" (MESSAGES 3 UNSEEN 2 UIDNEXT 4)']
    assert [r[1] for r in imap.backend.reads] == [2, 1, 3]


async def test_aioimaplib_login_refused_before_tls(imap: Listener) -> None:
    client = aioimaplib.IMAP4(host="127.0.0.1", port=imap.port, timeout=10)
    await client.wait_hello_from_server()
    response = await client.login(USER, PASSWORD)
    assert response.result == "NO"
    assert b"PRIVACYREQUIRED" in b" ".join(response.lines)
    await client.logout()
