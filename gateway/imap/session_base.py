"""The state every IMAP command group shares: who is logged in and what the client believes.

A session holds the authenticated principal and, once a mailbox is selected,
the client's view of it — the sequence-number → UID map, each message's flags
and MODSEQ — and keeps that view honest: :meth:`SessionBase.sync` re-reads the
mailbox and announces EXPUNGE/EXISTS/FETCH changes only where RFC 3501 §7.4.1
allows. Argument checks shared by the command groups live here too (names,
flags, sequence sets). It never names anyone but the principal to the backend
and never logs arguments.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gateway.core.ports import ImapBackend, MailboxView, MessageInfo, Notifier, Principal
from gateway.imap.fetch import format_flags
from gateway.imap.parser import ParseError, Token, parse_sequence_set

__all__ = [
    "SYSTEM_FLAGS",
    "Ask",
    "No",
    "Outcome",
    "ReadLine",
    "Send",
    "SessionBase",
    "State",
    "astring",
    "mailbox_name",
    "parse_flags",
    "uid_set",
]

Send = Callable[[bytes], Awaitable[None]]
Ask = Callable[[bytes], Awaitable[bytes]]  # send a continuation, read the client's line
ReadLine = Callable[[], Awaitable[bytes]]  # the client's next line (IDLE's DONE)

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_BY_UPPER = {f.upper(): f for f in SYSTEM_FLAGS}
# RFC 3501 §9 flag-keyword = atom; pli also bounds it (a keyword is stored per message).
_KEYWORD = re.compile(r"[!#$&'+\-.0-9:;<=>?@A-Z^_`a-z|~]{1,64}", re.ASCII)
_MAX_FLAGS = 32


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the server must do after a command: upgrade to TLS, or close."""

    starttls: bool = False
    close: bool = False


class No(Exception):
    """Answer the command with a tagged NO (text may start with a [CODE])."""


def astring(tok: Token, what: str) -> str:
    if isinstance(tok, bytes):
        try:
            return tok.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(f"{what} is not UTF-8") from None
    if isinstance(tok, str):
        return tok
    raise ParseError(f"{what} must be a string")


def mailbox_name(tok: Token, *, trailing_delimiter_ok: bool = False) -> str:
    """A mailbox name as the backend sees it, or NO [CANNOT] naming why (RFC 3501 §5.1).

    Names are keys, never paths, but the checks keep any spelling that looks like
    traversal, a wildcard or a control character from ever being stored or echoed.
    """
    name = astring(tok, "mailbox name")
    if trailing_delimiter_ok and name.endswith("/") and len(name) > 1:
        name = name[:-1]  # RFC 3501 §6.3.3: "foo/" creates "foo"
    if not name or len(name) > 255:
        raise No("[CANNOT] Mailbox name empty or longer than 255 characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise No("[CANNOT] Invalid mailbox name: control character")
    if "%" in name or "*" in name:
        raise No("[CANNOT] Invalid mailbox name: wildcard")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise No("[CANNOT] Invalid mailbox name: empty, '.' or '..' level")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return "/".join(parts)


def parse_flags(tok: Token, *, allow_recent: bool = False) -> frozenset[str]:
    """A flag list (or one flag): system flags canonicalised, keywords bounded (§2.3.2)."""
    raw = tok if isinstance(tok, list) else [tok]
    if len(raw) > _MAX_FLAGS:
        raise ParseError(f"at most {_MAX_FLAGS} flags at once")
    out: set[str] = set()
    for f in raw:
        if not isinstance(f, str):
            raise ParseError("flags must be atoms")
        if f.startswith("\\"):
            canon = _BY_UPPER.get(f.upper())
            if canon is None:  # \Recent is the server's; other \-flags do not exist
                raise ParseError(f"flag {f[:20]} cannot be set")
            out.add(canon)
        elif _KEYWORD.fullmatch(f):
            out.add(f)
        else:
            raise ParseError("invalid keyword")
    return frozenset(out)


def uid_set(uids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` → ``1:3,7``, order kept (RFC 4315 COPYUID pairs by position)."""
    out: list[str] = []
    i = 0
    while i < len(uids):
        j = i
        while j + 1 < len(uids) and uids[j + 1] == uids[j] + 1:
            j += 1
        out.append(str(uids[i]) if i == j else f"{uids[i]}:{uids[j]}")
        i = j + 1
    return ",".join(out)


class SessionBase:
    """Connection state; the command groups are mixins over this class."""

    def __init__(
        self,
        backend: ImapBackend,
        *,
        remote: str,
        tls_active: bool,
        starttls_available: bool,
        ask: Ask,
        session_id: str = "-",
        max_login_failures: int = 3,
        read_line: ReadLine | None = None,
        notifier: Notifier | None = None,
        idle_poll: float = 30.0,
        idle_timeout: float = 1800.0,
    ) -> None:
        self.backend = backend
        self.remote = remote
        self.session_id = session_id
        self.max_login_failures = max_login_failures
        self.login_failures = 0
        self.tls_active = tls_active
        self.starttls_available = starttls_available
        self.ask = ask
        self.read_line = read_line
        self.notifier = notifier
        self.idle_poll = idle_poll
        self.idle_timeout = idle_timeout
        self.state = State.NOT_AUTHENTICATED
        self.principal: Principal | None = None
        self.condstore = False  # RFC 7162 §3.1: enabled by ENABLE, SELECT (CONDSTORE), MODSEQ
        self.deselect()

    # --- the selected mailbox ----------------------------------------------------------
    def deselect(self) -> None:
        self.mailbox: str | None = None
        self.owner = ""
        self.readonly = False
        self.uids: list[int] = []
        self.infos: dict[int, MessageInfo] = {}
        self.uid_validity = 0
        self.uid_next = 1
        self.highest_modseq = 1

    def adopt(self, view: MailboxView) -> None:
        self.mailbox = view.name
        self.owner = view.owner
        self.uids = [m.uid for m in view.messages]
        self.infos = {m.uid: m for m in view.messages}
        self.uid_validity = view.uid_validity
        self.uid_next = view.uid_next
        self.highest_modseq = view.highest_modseq

    @property
    def user(self) -> Principal:
        if self.principal is None:  # the dispatcher checks the state first
            raise RuntimeError("no principal")
        return self.principal

    @property
    def selected(self) -> str:
        if self.mailbox is None:
            raise RuntimeError("no selected mailbox")
        return self.mailbox

    def flag_fetch(self, seq: int, info: MessageInfo, *, uid: bool = True) -> bytes:
        """``* n FETCH (FLAGS ...)``, with UID and, once CONDSTORE is on, MODSEQ."""
        extra = f" UID {info.uid}" if uid else ""
        if self.condstore:
            extra += f" MODSEQ ({info.modseq})"
        return f"* {seq} FETCH (FLAGS {format_flags(info.flags)}{extra})\r\n".encode()

    def targets(self, set_token: Token, by_uid: bool) -> list[tuple[int, MessageInfo]]:
        """(sequence number, message) for a sequence or UID set (RFC 3501 §6.4.8, §9)."""
        if not isinstance(set_token, str):
            raise ParseError("invalid sequence set")
        if not self.uids and "*" in set_token:
            parse_sequence_set(set_token, 1)  # still refuse a malformed set
            return []  # "*" in an empty mailbox names nothing (RFC 9051 §6.4.5 note)
        if by_uid:
            ranges = parse_sequence_set(set_token, self.uids[-1] if self.uids else 0)
            return [
                (i, self.infos[u])
                for i, u in enumerate(self.uids, 1)
                if any(lo <= u <= hi for lo, hi in ranges)
            ]
        ranges = parse_sequence_set(set_token, len(self.uids))
        if any(hi > len(self.uids) for _, hi in ranges):
            raise ParseError("message sequence number out of range")
        wanted = sorted({n for lo, hi in ranges for n in range(lo, hi + 1)})
        return [(n, self.infos[self.uids[n - 1]]) for n in wanted]

    async def announce_expunged(self, gone: Sequence[int], send: Send) -> None:
        """``* n EXPUNGE`` for each UID, highest sequence first so no number shifts."""
        doomed = set(gone)
        for seq in range(len(self.uids), 0, -1):
            uid = self.uids[seq - 1]
            if uid in doomed:
                del self.uids[seq - 1]
                self.infos.pop(uid, None)
                await send(b"* %d EXPUNGE\r\n" % seq)

    async def sync(self, send: Send, *, expunges: bool = True) -> None:
        """Re-read the selected mailbox and tell the client what changed meanwhile.

        RFC 3501 §7.4.1: no EXPUNGE during FETCH, STORE or SEARCH (``expunges``
        False), since the client may be counting on sequence numbers; vanished
        messages then stay in the view until a later command may announce them.
        """
        if self.mailbox is None:
            return
        fresh = await self.backend.select(self.user, self.mailbox)
        now = {m.uid: m for m in fresh.messages}
        if expunges:
            await self.announce_expunged([u for u in self.uids if u not in now], send)
        last = self.uids[-1] if self.uids else 0
        for seq, uid in enumerate(self.uids, 1):
            old, new = self.infos[uid], now.get(uid)
            if new is not None and (new.flags != old.flags or new.modseq != old.modseq):
                self.infos[uid] = new
                if new.flags != old.flags:
                    await send(self.flag_fetch(seq, new))
        arrived = [m for m in fresh.messages if m.uid > last]
        if arrived:
            self.uids.extend(m.uid for m in arrived)
            self.infos.update((m.uid, m) for m in arrived)
            await send(b"* %d EXISTS\r\n* 0 RECENT\r\n" % len(self.uids))
        self.uid_next = fresh.uid_next
        self.highest_modseq = fresh.highest_modseq
