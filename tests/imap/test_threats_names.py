"""Threats through mailbox names and literals: no spelling reaches another user's mailbox,
and literal bombs are refused before a byte of them is read."""

from __future__ import annotations

import copy

import pytest

from tests.imap.conftest import Listener
from tests.imap.memory_backend import OTHER, USER
from tests.imap.wire import Conn

_HOSTILE: list[str | bytes] = [
    OTHER,
    f"../{OTHER}/INBOX",
    f"{OTHER}/INBOX",
    "*",
    "%",
    "INBOX/../..",
    "INBOX/.",
    "..",
    "#shared/x",
    f"#users/{OTHER}",
    f"~{OTHER}",
    f"Shared/{OTHER}/INBOX",
    f"Shared/{OTHER}",
    f"Shared/../{OTHER}/INBOX",
    "Shared/%/INBOX",
    "Shared/*",
    "Shared//INBOX",
    "/INBOX",
    f"Shared/{OTHER.upper()}/INBOX",
    "INBOX//x",
    "x" * 300,
]
_BINARY: list[str | bytes] = [b"IN\x00BOX", b"IN\rBOX", b"IN\nBOX", b"a\x7fb", b"\xff\xfe"]


def _as_literal(name: str | bytes) -> bytes:
    raw = name.encode() if isinstance(name, str) else name
    return b"{%d+}\r\n" % len(raw) + raw


@pytest.mark.parametrize(
    "template",
    [
        b"SELECT %s",
        b"EXAMINE %s",
        b"STATUS %s (MESSAGES)",
        b"DELETE %s",
        b"SUBSCRIBE %s",
        b"RENAME %s Elsewhere",
        b"APPEND %s {3+}\r\nx\r\n",
        b"COPY 1 %s",
        b"MOVE 1 %s",
    ],
)
async def test_no_name_reaches_another_user(imap: Listener, template: bytes) -> None:
    before = copy.deepcopy(imap.backend.users[OTHER])
    c = await Conn.logged_in(imap.port, imap.client_ctx)
    if template.startswith((b"COPY", b"MOVE")):
        assert (await c.run("s", "SELECT INBOX"))[-1].startswith(b"s OK")
    for n, name in enumerate([*_HOSTILE, *_BINARY]):
        cmd = template.replace(b"%s", _as_literal(name)) if b"%s" in template else template
        reply = (await c.run(f"t{n}", cmd))[-1]
        if b"%s" in template:
            assert reply.startswith((f"t{n} NO".encode(), f"t{n} BAD".encode())), (name, reply)
    assert imap.backend.users[OTHER] == before
    assert not [r for r in imap.backend.reads if r[0] != USER]
    c.close()


async def test_create_never_lands_outside_own_namespace(imap: Listener) -> None:
    before = {u: copy.deepcopy(b) for u, b in imap.backend.users.items() if u != USER}
    c = await Conn.logged_in(imap.port, imap.client_ctx)
    for n, name in enumerate([*_HOSTILE, *_BINARY]):
        reply = (await c.run(f"c{n}", b"CREATE " + _as_literal(name)))[-1]
        # A plain name is a mailbox of the user's own, never anybody else's.
        assert reply.startswith((f"c{n} NO".encode(), f"c{n} BAD".encode(), f"c{n} OK".encode()))
    assert {u: b for u, b in imap.backend.users.items() if u != USER} == before
    made = set(imap.backend.users[USER])
    assert not any(m.startswith(("Shared", "/", "..")) or ".." in m.split("/") for m in made)
    assert not any(len(m) > 255 or any(ord(ch) < 32 for ch in m) for m in made)
    c.close()


async def test_list_patterns_never_show_other_users(imap: Listener) -> None:
    c = await Conn.logged_in(imap.port, imap.client_ctx)
    for n, (ref, pattern) in enumerate(
        [
            ("", "*"),
            ("../", "*"),
            ("Shared/", "*"),
            ("", "Shared/jean*"),
            ("", "*jean*"),
            ("", "%/%/%"),
            (f"{OTHER}/", "*"),
            ("#users/", "*"),
        ]
    ):
        lines = await c.run(f"l{n}", f'LIST "{ref}" "{pattern}"')
        assert lines[-1].startswith(f"l{n} OK".encode())
        assert not any(OTHER.encode() in ln for ln in lines), lines
    c.close()


async def test_literal_bombs_refused_without_reading(imap: Listener) -> None:
    c = await Conn.logged_in(imap.port, imap.client_ctx)
    # Synchronising: BAD before any continuation, the session goes on.
    await c.send(b"a APPEND INBOX {999999999}\r\n")
    assert await c.line() == b"a BAD [TOOBIG] Literal too large\r\n"
    await c.send(b"b SELECT {5000}\r\n")  # beyond the (test) limit for non-APPEND literals
    assert await c.line() == b"b BAD [TOOBIG] Literal too large\r\n"
    assert (await c.run("n", "NOOP"))[-1] == b"n OK NOOP completed\r\n"
    # An APPEND message may exceed the ordinary literal limit.
    body = b"Subject: big\r\n\r\n" + b"x" * 4000 + b"\r\n"
    assert (await c.run("ap", b"APPEND INBOX {%d+}\r\n" % len(body) + body))[-1].startswith(
        b"ap OK [APPENDUID"
    )
    # LITERAL+: the bytes are already coming, so the only safe answer is BYE and close.
    await c.send(b"z APPEND INBOX {999999999+}\r\n" + b"x" * 1000)
    assert (await c.line()).startswith(b"* BYE")
    assert await c.line() == b""
    c.close()


async def test_idle_needs_done(imap: Listener) -> None:
    c = await Conn.logged_in(imap.port, imap.client_ctx)
    await c.run("s", "SELECT INBOX")
    await c.send(b"i IDLE\r\n")
    assert await c.line() == b"+ idling\r\n"
    await c.send(b"FETCH 1 RFC822\r\n")  # anything but DONE ends IDLE with BAD, nothing runs
    assert await c.line() == b"i BAD Expected DONE\r\n"
    assert (await c.run("n", "NOOP"))[-1].startswith(b"n OK")
    assert imap.backend.reads == []
    c.close()
