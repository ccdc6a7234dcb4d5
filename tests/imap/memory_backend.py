"""An in-memory ImapBackend for protocol tests (the SQL mailstore is covered end to end)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.base.errors import MailboxExists, MailboxNotFound, MessageNotFound, PermissionDenied
from gateway.core.model import Channel
from gateway.core.ports import (
    ALL_RIGHTS,
    DELEGATED_RIGHTS,
    SHARED_PREFIX,
    CopyResult,
    MailboxEntry,
    MailboxView,
    MessageInfo,
    Principal,
    StoreMode,
    StoreResult,
)
from gateway.imap.bodystructure import structure
from gateway.mailstore.notify import MailboxNotifier

USER = "sophie.bernard@ch-arras.mssante.fr"
PASSWORD = "correct horse battery"
OTHER = "jean.petit@medecin.mssante.fr"
SHARED = "urgences@ch-arras.mssante.fr"  # an ORG mailbox USER is delegated to
SPECIAL = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk"}
WHEN = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)


def _msg(n: int) -> bytes:
    return (
        f"From: a@b.fr\r\nTo: {USER}\r\nSubject: message {n}\r\n"
        f"Date: Mon, 23 Nov 2026 08:00:00 +0000\r\n"
        f"Message-ID: <{n}@test>\r\n\r\nBody number {n}\r\n"
    ).encode()


@dataclass
class Msg:
    data: bytes
    flags: set[str]
    date: dt.datetime
    modseq: int = 1


@dataclass
class Box:
    msgs: dict[int, Msg] = field(default_factory=dict)
    uid_validity: int = 1234
    uid_next: int = 1
    modseq: int = 1
    subscribed: bool = True

    def add(self, data: bytes, flags: set[str] | None = None, date: dt.datetime = WHEN) -> int:
        uid = self.uid_next
        self.uid_next += 1
        self.modseq += 1
        self.msgs[uid] = Msg(data, set(flags or ()), date, self.modseq)
        return uid


class MemoryBackend:
    def __init__(self) -> None:
        inbox = Box()
        for n in (1, 2, 3):
            inbox.add(_msg(n))
        other = Box()
        other.add(b"Subject: secret of another user\r\n\r\nno\r\n")
        shared = Box()
        shared.add(b"Subject: for the ward\r\n\r\nshared\r\n")
        self.users: dict[str, dict[str, Box]] = {
            USER: {"INBOX": inbox, **{n: Box() for n in SPECIAL}},
            OTHER: {"INBOX": other},
            SHARED: {"INBOX": shared},
        }
        self.delegations = {USER: [SHARED]}
        self.acl: dict[tuple[str, str], str] = {}  # (owner, user) → rights
        self.reads: list[tuple[str, int, str]] = []
        self.audit: list[tuple[str, str, int]] = []  # (action, owner, uid)
        self.notifier = MailboxNotifier()

    @property
    def boxes(self) -> dict[str, dict[int, Msg]]:
        """Each user's INBOX messages (the older tests' view)."""
        return {u: b["INBOX"].msgs for u, b in self.users.items()}

    async def authenticate(self, username: str, password: str, remote: str) -> Principal | None:
        if username == USER and password == PASSWORD:
            return Principal(USER)
        return None

    def _where(self, principal: Principal, name: str) -> tuple[str, str]:
        if name.upper() == "INBOX":
            return principal.address, "INBOX"
        if name.startswith(SHARED_PREFIX):
            owner, _, rest = name[len(SHARED_PREFIX) :].partition("/")
            if owner not in self.delegations.get(principal.address, []) or not rest:
                raise MailboxNotFound(name)
            return owner, "INBOX" if rest.upper() == "INBOX" else rest
        return principal.address, name

    def rights(self, principal: Principal, owner: str) -> str:
        if owner == principal.address:
            return ALL_RIGHTS
        return self.acl.get((owner, principal.address), DELEGATED_RIGHTS)

    def _need(self, principal: Principal, owner: str, right: str) -> None:
        if right not in self.rights(principal, owner):
            raise PermissionDenied("NOPERM", f"Missing right {right}")

    def _box(self, principal: Principal, name: str) -> tuple[str, Box]:
        owner, own = self._where(principal, name)
        box = self.users[owner].get(own)
        if box is None:
            raise MailboxNotFound(name)
        return owner, box

    async def list_mailboxes(self, principal: Principal) -> list[MailboxEntry]:
        mine = self.users[principal.address]
        out = [MailboxEntry("INBOX")] + [
            MailboxEntry(n, SPECIAL.get(n, ""), b.subscribed)
            for n, b in sorted(mine.items())
            if n != "INBOX"
        ]
        for owner in self.delegations.get(principal.address, []):
            out += [MailboxEntry(f"{SHARED_PREFIX}{owner}/{n}") for n in self.users[owner]]
        return out

    async def select(self, principal: Principal, mailbox: str) -> MailboxView:
        owner, box = self._box(principal, mailbox)
        msgs = [
            MessageInfo(uid, frozenset(m.flags), len(m.data), m.date, m.modseq)
            for uid, m in sorted(box.msgs.items())
        ]
        name = "INBOX" if mailbox.upper() == "INBOX" else mailbox
        rights = self.rights(principal, owner)
        return MailboxView(
            name,
            box.uid_validity,
            max(box.uid_next, max(box.msgs, default=0) + 1),
            msgs,
            box.modseq,
            owner,
            writable=bool(set("swte") & set(rights)),
            rights=rights,
        )

    async def fetch_body(
        self,
        principal: Principal,
        mailbox: str,
        uid: int,
        remote: str,
        purpose: str = "fetch",
        channel: Channel = Channel.IMAP,
    ) -> bytes:
        _, box = self._box(principal, mailbox)
        if uid not in box.msgs:
            raise MessageNotFound(str(uid))
        self.reads.append((principal.address, uid, remote))
        return box.msgs[uid].data

    async def fetch_structure(
        self, principal: Principal, mailbox: str, uid: int, remote: str
    ) -> tuple[bytes, bytes]:
        return structure(await self.fetch_body(principal, mailbox, uid, remote, "structure"))

    async def store_flags(
        self,
        principal: Principal,
        mailbox: str,
        uids: Sequence[int],
        mode: StoreMode,
        flags: frozenset[str],
        unchanged_since: int | None = None,
    ) -> StoreResult:
        owner, box = self._box(principal, mailbox)
        self._need(principal, owner, "w")
        changed, refused = [], []
        bumped = False
        for uid in uids:
            m = box.msgs.get(uid)
            if m is None:
                continue
            if unchanged_since is not None and m.modseq > unchanged_since:
                refused.append(uid)
                continue
            new = (
                m.flags | flags
                if mode is StoreMode.ADD
                else m.flags - flags
                if mode is StoreMode.REMOVE
                else set(flags)
            )
            if new != m.flags:
                if not bumped:
                    box.modseq += 1
                    bumped = True
                m.flags, m.modseq = set(new), box.modseq
                changed.append(MessageInfo(uid, frozenset(new), len(m.data), m.date, m.modseq))
        if changed:
            self.notifier.notify([owner])
        return StoreResult(changed, refused)

    async def expunge(
        self, principal: Principal, mailbox: str, uids: Sequence[int] | None, remote: str
    ) -> list[int]:
        owner, box = self._box(principal, mailbox)
        gone = [
            u
            for u, m in sorted(box.msgs.items())
            if "\\Deleted" in m.flags and (uids is None or u in uids)
        ]
        for u in gone:
            del box.msgs[u]
            self.audit.append(("message.expunged", owner, u))
        if gone:
            box.modseq += 1
            self.notifier.notify([owner])
        return gone

    async def copy(
        self,
        principal: Principal,
        mailbox: str,
        uids: Sequence[int],
        dest: str,
        remote: str,
        *,
        move: bool = False,
    ) -> CopyResult:
        owner, src = self._box(principal, mailbox)
        try:
            dest_owner, dst = self._box(principal, dest)
        except MailboxNotFound:
            raise PermissionDenied("TRYCREATE", "No such destination mailbox") from None
        pairs = []
        for u in sorted(uids):
            if u in src.msgs:
                m = src.msgs[u]
                pairs.append((u, dst.add(m.data, set(m.flags), m.date)))
                self.audit.append(
                    ("message.moved" if move else "message.copied", dest_owner, pairs[-1][1])
                )
        if move:
            for u, _ in pairs:
                del src.msgs[u]
            src.modseq += 1
        self.notifier.notify({owner, dest_owner})
        return CopyResult(dst.uid_validity, pairs)

    async def append(
        self,
        principal: Principal,
        mailbox: str,
        data: bytes,
        flags: frozenset[str],
        internal_date: dt.datetime | None,
        remote: str,
    ) -> tuple[int, int]:
        try:
            owner, box = self._box(principal, mailbox)
        except MailboxNotFound:
            raise PermissionDenied("TRYCREATE", "No such mailbox") from None
        self._need(principal, owner, "i")
        uid = box.add(data, set(flags), internal_date or WHEN)
        self.audit.append(("message.appended", owner, uid))
        self.notifier.notify([owner])
        return box.uid_validity, uid

    async def create(self, principal: Principal, mailbox: str) -> None:
        owner, own = self._where(principal, mailbox)
        if own in self.users[owner] or own == "INBOX":
            raise MailboxExists(mailbox)
        self.users[owner][own] = Box(uid_validity=5678)

    async def delete(self, principal: Principal, mailbox: str) -> None:
        owner, own = self._where(principal, mailbox)
        if own == "INBOX":
            raise PermissionDenied("CANNOT", "INBOX cannot be deleted")
        if self.users[owner].pop(own, None) is None:
            raise MailboxNotFound(mailbox)

    async def rename(self, principal: Principal, old: str, new: str) -> None:
        owner, own = self._where(principal, old)
        owner2, own2 = self._where(principal, new)
        boxes = self.users[owner]
        if own not in boxes:
            raise MailboxNotFound(old)
        if owner2 != owner:
            raise PermissionDenied("CANNOT", "Cannot rename across namespaces")
        if own2 in boxes or own2 == "INBOX":
            raise MailboxExists(new)
        if own == "INBOX":
            boxes[own2] = Box(msgs=boxes["INBOX"].msgs, uid_next=boxes["INBOX"].uid_next)
            boxes["INBOX"] = Box(uid_next=boxes["INBOX"].uid_next)
            return
        for name in [n for n in boxes if n == own or n.startswith(own + "/")]:
            boxes[own2 + name[len(own) :]] = boxes.pop(name)

    async def subscribe(self, principal: Principal, mailbox: str, subscribed: bool) -> None:
        self._box(principal, mailbox)[1].subscribed = subscribed

    async def get_acl(
        self, principal: Principal, mailbox: str
    ) -> tuple[str, list[tuple[str, str]]]:
        owner, _ = self._box(principal, mailbox)
        entries = [
            (owner, ALL_RIGHTS),
            *sorted((u, r) for (o, u), r in self.acl.items() if o == owner),
        ]
        return self.rights(principal, owner), entries

    async def set_acl(
        self, principal: Principal, mailbox: str, identifier: str, rights: str | None
    ) -> None:
        owner, _ = self._box(principal, mailbox)
        self._need(principal, owner, "a")
        if owner == principal.address:
            raise PermissionDenied("CANNOT", "Personal mailboxes are not shared")
        if rights is None:
            self.acl.pop((owner, identifier), None)
        else:
            self.acl[owner, identifier] = rights
