"""Python's imaplib and aioimaplib, real clients, against pli's IMAP server."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
from typing import Any

import aioimaplib  # type: ignore[import-untyped]
import pytest

from tests.imap.conftest import Listener
from tests.imap.memory_backend import PASSWORD, USER


def _ok(result: tuple[str, Any]) -> Any:
    assert result[0] == "OK", result
    return result[1]


def _connect(listener: Listener) -> imaplib.IMAP4:
    """CAPABILITY → STARTTLS (certificate and host name verified) → CAPABILITY."""
    client = imaplib.IMAP4("127.0.0.1", listener.port, timeout=10)
    caps = _ok(client.capability())[0].split()
    assert caps == [
        b"IMAP4rev1",
        b"LITERAL+",
        b"ID",
        b"UNSELECT",
        b"IDLE",
        b"UIDPLUS",
        b"MOVE",
        b"NAMESPACE",
        b"ENABLE",
        b"SPECIAL-USE",
        b"CONDSTORE",
        b"CHILDREN",
        b"SASL-IR",
        b"ACL",
        b"RIGHTS=texk",
        b"STARTTLS",
        b"LOGINDISABLED",
    ]
    client.starttls(ssl_context=ssl.create_default_context(cafile=str(listener.cafile)))
    caps = _ok(client.capability())[0].split()
    assert b"AUTH=PLAIN" in caps and b"STARTTLS" not in caps and b"LOGINDISABLED" not in caps
    return client


def _full_sequence(listener: Listener) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    client = _connect(listener)
    assert _ok(client.login(USER, PASSWORD))
    seen["list"] = _ok(client.list('""', "*"))  # imaplib does not quote arguments
    seen["select"] = _ok(client.select("INBOX"))
    seen["select_untagged"] = {
        k: client.untagged_responses.get(k)
        for k in ("FLAGS", "UIDVALIDITY", "UIDNEXT", "PERMANENTFLAGS", "READ-WRITE")
    }
    seen["fast"] = _ok(client.fetch("1:*", "(FLAGS RFC822.SIZE)"))
    seen["uid"] = _ok(client.uid("FETCH", "2:*", "(FLAGS)"))
    seen["peek"] = _ok(client.fetch("1", "(BODY.PEEK[])"))
    seen["after_peek"] = _ok(client.fetch("1", "(FLAGS)"))
    seen["rfc822"] = _ok(client.fetch("1", "(RFC822)"))
    seen["body"] = _ok(client.fetch("2", "(BODY[])"))
    seen["after_body"] = _ok(client.fetch("1:3", "(FLAGS)"))
    seen["mixed"] = _ok(client.fetch("3", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])"))
    assert _ok(client.noop())
    assert client.logout()[0] == "BYE"
    return seen


async def test_imaplib_full_sequence(imap: Listener) -> None:
    seen = await asyncio.to_thread(_full_sequence, imap)
    box = imap.backend.boxes[USER]
    sizes = {uid: len(m.data) for uid, m in box.items()}
    assert seen["list"][:2] == [
        b'(\\HasNoChildren) "/" "INBOX"',
        b'(\\HasNoChildren \\Drafts) "/" "Drafts"',
    ]
    assert seen["select"] == [b"3"]
    assert seen["select_untagged"] == {
        "FLAGS": [b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"],
        "UIDVALIDITY": [b"1234"],
        "UIDNEXT": [b"4"],
        "PERMANENTFLAGS": [b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)"],
        "READ-WRITE": [b""],
    }
    assert seen["fast"] == [f"{n} (FLAGS () RFC822.SIZE {sizes[n]})".encode() for n in (1, 2, 3)]
    assert seen["uid"] == [b"2 (UID 2 FLAGS ())", b"3 (UID 3 FLAGS ())"]
    assert seen["peek"][0] == (b"1 (BODY[] {%d}" % sizes[1], box[1].data)
    assert seen["after_peek"] == [b"1 (FLAGS ())"]  # BODY.PEEK[] leaves \Seen alone
    assert seen["rfc822"][0] == (b"1 (RFC822 {%d}" % sizes[1], box[1].data)
    assert seen["rfc822"][1] == b" FLAGS (\\Seen))"  # RFC 3501 §6.4.5: the flag change shown
    assert seen["body"][0][1] == box[2].data
    assert seen["after_body"] == [b"1 (FLAGS (\\Seen))", b"2 (FLAGS (\\Seen))", b"3 (FLAGS ())"]
    head = seen["mixed"][0]
    assert head[0] == (
        b'3 (UID 3 FLAGS () INTERNALDATE "23-Nov-2026 08:00:00 +0000" '
        b"RFC822.SIZE %d BODY[HEADER] {%d}" % (sizes[3], len(head[1]))
    )
    assert box[3].data.startswith(head[1]) and head[1].endswith(b"\r\n\r\n")
    assert box[1].flags == {"\\Seen"} and box[2].flags == {"\\Seen"} and box[3].flags == set()
    # Every body read went through the audited backend call, with the client's address.
    assert imap.backend.reads == [
        (USER, 1, "127.0.0.1"),
        (USER, 1, "127.0.0.1"),
        (USER, 2, "127.0.0.1"),
        (USER, 3, "127.0.0.1"),
    ]


def _other_commands(listener: Listener) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    client = _connect(listener)
    _ok(client.authenticate("PLAIN", lambda _challenge: f"\0{USER}\0{PASSWORD}".encode()))
    seen["examine"] = _ok(client.select("inbox", readonly=True))  # INBOX is case-insensitive
    seen["examine_mode"] = "READ-ONLY" in client.untagged_responses
    _ok(client.fetch("1", "(BODY[])"))  # read-only: must not set \Seen
    seen["flags"] = _ok(client.fetch("1", "FLAGS"))
    seen["envelope"] = _ok(client.fetch("2", "ENVELOPE"))
    seen["all"] = _ok(client.fetch("2", "ALL"))
    seen["check"] = _ok(client.check())
    seen["structure"] = _ok(client.fetch("1", "(BODYSTRUCTURE BODY)"))
    with pytest.raises(imaplib.IMAP4.error, match="invalid FETCH section"):
        client.fetch("1", "BODY[0]")
    with pytest.raises(imaplib.IMAP4.error, match="Unknown command"):
        client.xatom("FROBNICATE")
    _ok(client.unselect())
    _ok(client.select("INBOX"))
    _ok(client.store("3", "+FLAGS", "(\\Flagged)"))
    _ok(client.close())
    seen["state_after_close"] = client.state
    seen["status"] = _ok(client.status("INBOX", "(MESSAGES UNSEEN UIDNEXT)"))
    client.logout()
    return seen


async def test_imaplib_examine_check_close_unselect(imap: Listener) -> None:
    seen = await asyncio.to_thread(_other_commands, imap)
    assert seen["examine"] == [b"3"] and seen["examine_mode"]
    assert seen["flags"] == [b"1 (FLAGS ())"]
    env = (
        b'("Mon, 23 Nov 2026 08:00:00 +0000" "message 2" ((NIL NIL "a" "b.fr")) '
        b'((NIL NIL "a" "b.fr")) '
        b'((NIL NIL "a" "b.fr")) ((NIL NIL "sophie.bernard" "ch-arras.mssante.fr")) '
        b'NIL NIL NIL "<2@test>")'
    )
    assert seen["envelope"] == [b"2 (ENVELOPE " + env + b")"]
    assert seen["all"][0].endswith(b" ENVELOPE " + env + b")")
    assert seen["check"] == [b"CHECK completed"]
    size = len(imap.backend.boxes[USER][1].data.split(b"\r\n\r\n", 1)[1])
    text = b'"TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" %d 1' % size
    assert seen["structure"] == [
        b"1 (BODYSTRUCTURE (" + text + b" NIL NIL NIL NIL) BODY (" + text + b"))"
    ]
    assert seen["state_after_close"] == "AUTH"
    assert seen["status"] == [b'"INBOX" (MESSAGES 3 UNSEEN 3 UIDNEXT 4)']
    assert imap.backend.boxes[USER][3].flags == {"\\Flagged"}


async def test_aioimaplib_login_refused_before_tls(imap: Listener) -> None:
    # aioimaplib 2.x has no STARTTLS upgrade, so it can only check the plaintext refusal.
    client = aioimaplib.IMAP4(host="127.0.0.1", port=imap.port, timeout=10)
    await client.wait_hello_from_server()
    response = await client.login(USER, PASSWORD)
    assert response.result == "NO"
    assert b"PRIVACYREQUIRED" in b" ".join(response.lines)
    await client.logout()
