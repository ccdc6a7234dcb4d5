"""An in-memory ImapBackend for protocol tests (the SQL mailstore is covered end to end)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from gateway.imap.backend import (
    MailboxNotFound,
    MailboxView,
    MessageInfo,
    MessageNotFound,
    Principal,
)

USER = "sophie.bernard@ch-arras.mssante.fr"
PASSWORD = "correct horse battery"
OTHER = "jean.petit@medecin.mssante.fr"


def _msg(n: int) -> bytes:
    return (f"From: a@b.fr\r\nTo: {USER}\r\nSubject: message {n}\r\n"
            f"Message-ID: <{n}@test>\r\n\r\nBody number {n}\r\n").encode()


class MemoryBackend:
    def __init__(self) -> None:
        when = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
        self.boxes: dict[str, dict[int, tuple[bytes, set[str], dt.datetime]]] = {
            USER: {uid: (_msg(uid), set(), when) for uid in (1, 2, 3)},
            OTHER: {1: (b"Subject: secret of another user\r\n\r\nno\r\n", set(), when)},
        }
        self.reads: list[tuple[str, int, str]] = []

    async def authenticate(self, username: str, password: str, remote: str) -> Principal | None:
        if username == USER and password == PASSWORD:
            return Principal(USER)
        return None

    async def list_mailboxes(self, principal: Principal) -> list[str]:
        return ["INBOX"]

    def _box(self, principal: Principal, mailbox: str) -> dict[int, tuple[bytes, set[str],
                                                                          dt.datetime]]:
        if mailbox != "INBOX":
            raise MailboxNotFound(mailbox)
        return self.boxes[principal.address]

    async def select(self, principal: Principal, mailbox: str) -> MailboxView:
        box = self._box(principal, mailbox)
        msgs = [MessageInfo(uid, frozenset(f), len(b), d) for uid, (b, f, d) in sorted(box.items())]
        return MailboxView("INBOX", 1234, max(box, default=0) + 1, msgs)

    async def fetch_body(self, principal: Principal, mailbox: str, uid: int, remote: str) -> bytes:
        box = self._box(principal, mailbox)
        if uid not in box:
            raise MessageNotFound(str(uid))
        self.reads.append((principal.address, uid, remote))
        return box[uid][0]

    async def add_flags(self, principal: Principal, mailbox: str, uids: Sequence[int],
                        flags: frozenset[str]) -> None:
        box = self._box(principal, mailbox)
        for uid in uids:
            box[uid][1].update(flags)
