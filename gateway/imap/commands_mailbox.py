"""Authenticated-state commands on mailboxes (RFC 3501 §6.3): SELECT, EXAMINE, CREATE,
DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS and APPEND (with RFC 4315
APPENDUID, RFC 6154 special-use attributes, RFC 7162 HIGHESTMODSEQ).

Names are checked by :func:`mailbox_name` before any backend call and LIST
patterns only ever filter the principal's own list, so a wildcard cannot
reach a name the backend did not offer. Nothing here logs a mailbox name.
"""

from __future__ import annotations

import datetime as dt
import re

from gateway.core.ports import MailboxEntry
from gateway.imap.parser import Command, ParseError, Token
from gateway.imap.responses import quote, tagged
from gateway.imap.session_base import (
    SYSTEM_FLAGS,
    No,
    Outcome,
    Send,
    SessionBase,
    State,
    astring,
    mailbox_name,
    parse_flags,
)

__all__ = ["MailboxCommands", "list_pattern", "parse_date_time"]

_DATE_TIME = re.compile(
    r"^([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$", re.ASCII
)
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_STATUS_ITEMS = {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ"}


def list_pattern(reference: str, pattern: str) -> re.Pattern[str]:
    """RFC 3501 §6.3.8: ``*`` matches anything, ``%`` anything but the delimiter ``/``."""
    full = reference + pattern
    if full[:5].upper() == "INBOX" and full[5:6] in ("", "/", "*", "%"):
        full = "INBOX" + full[5:]  # INBOX is case-insensitive (RFC 3501 §5.1)
    out = []
    for c in full:
        out.append(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def parse_date_time(tok: Token) -> dt.datetime:
    """RFC 3501 §9 date-time: ``"17-Jul-1996 02:44:25 -0700"``."""
    text = astring(tok, "date-time")
    m = _DATE_TIME.match(text)
    if m is None or m.group(2).upper() not in _MONTHS:
        raise ParseError('APPEND date-time must look like "17-Jul-1996 02:44:25 -0700"')
    offset = dt.timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
    try:
        return dt.datetime(
            int(m.group(3)),
            _MONTHS.index(m.group(2).upper()) + 1,
            int(m.group(1)),
            int(m.group(4)),
            int(m.group(5)),
            int(m.group(6)),
            tzinfo=dt.timezone(-offset if m.group(7) == "-" else offset),
        )
    except ValueError:
        raise ParseError("APPEND date-time does not exist") from None


class MailboxCommands(SessionBase):
    async def select(self, cmd: Command, send: Send) -> Outcome:
        if not cmd.args or len(cmd.args) > 2:
            raise ParseError(f"{cmd.name} needs one mailbox name")
        if len(cmd.args) == 2:  # RFC 7162 §3.1.8 select parameter (CONDSTORE)
            params = cmd.args[1]
            if not isinstance(params, list) or [str(p).upper() for p in params] != ["CONDSTORE"]:
                raise ParseError(f"unknown {cmd.name} parameter")
            self.condstore = True
        self.state = State.AUTHENTICATED  # RFC 3501 §6.3.1: deselect first, even on failure
        self.deselect()
        view = await self.backend.select(self.user, mailbox_name(cmd.args[0]))
        self.adopt(view)
        self.readonly = cmd.name == "EXAMINE" or not view.writable
        self.state = State.SELECTED
        unseen = next(
            (i for i, u in enumerate(self.uids, 1) if "\\Seen" not in self.infos[u].flags), None
        )
        flags = " ".join(SYSTEM_FLAGS)
        perm = "" if self.readonly else f"{flags} \\*"
        lines = [
            f"* FLAGS ({flags})",
            f"* OK [PERMANENTFLAGS ({perm})] Flags permitted",
            f"* {len(self.uids)} EXISTS",
            "* 0 RECENT",
            f"* OK [UIDVALIDITY {view.uid_validity}] UIDs valid",
            f"* OK [UIDNEXT {view.uid_next}] Predicted next UID",
            f"* OK [HIGHESTMODSEQ {view.highest_modseq}] Highest",  # RFC 7162 §3.1.2.1
        ]
        if unseen:
            lines.append(f"* OK [UNSEEN {unseen}] First unseen")
        mode = "READ-ONLY" if self.readonly else "READ-WRITE"
        lines.append(f"{cmd.tag} OK [{mode}] {cmd.name} completed")
        await send(("\r\n".join(lines) + "\r\n").encode())
        return Outcome()

    async def list(self, cmd: Command, send: Send) -> Outcome:
        args = list(cmd.args)
        select_opts: set[str] = set()
        return_opts: set[str] = set()
        first = args[0] if args else None
        if isinstance(first, list):  # RFC 5258 §3 selection options
            select_opts = {str(o).upper() for o in first}
            args.pop(0)
        if (
            len(args) == 4
            and isinstance(args[2], str)
            and args[2].upper() == "RETURN"
            and isinstance(args[3], list)
        ):
            return_opts = {str(o).upper() for o in args[3]}
            args = args[:2]
        if len(args) != 2:
            raise ParseError(f"{cmd.name} needs a reference and a pattern")
        reference = astring(args[0], "reference")
        raw = args[1] if isinstance(args[1], list) else [args[1]]
        patterns = [astring(p, "pattern") for p in raw]
        lsub = cmd.name == "LSUB"
        subscribed_only = lsub or "SUBSCRIBED" in select_opts
        special_only = "SPECIAL-USE" in select_opts
        show_sub = "SUBSCRIBED" in return_opts or "SUBSCRIBED" in select_opts
        out: list[bytes] = []
        if patterns == [""]:  # RFC 3501 §6.3.8: the hierarchy delimiter and root
            out.append(b'* %s (\\Noselect) "/" ""\r\n' % cmd.name.encode())
        else:
            entries = await self.backend.list_mailboxes(self.user)
            rxs = [list_pattern(reference, p) for p in patterns]
            for entry, attrs in _with_parents(entries):
                if subscribed_only and not entry.subscribed:
                    continue
                if special_only and not entry.special_use:
                    continue
                if not any(rx.fullmatch(entry.name) for rx in rxs):
                    continue
                if show_sub and entry.subscribed and entry.selectable:
                    attrs = [*attrs, "\\Subscribed"]
                out.append(
                    b'* %s (%s) "/" %s\r\n'
                    % (cmd.name.encode(), " ".join(attrs).encode(), quote(entry.name))
                )
        out.append(tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        await send(b"".join(out))
        return Outcome()

    async def status(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 2 or not isinstance(cmd.args[1], list) or not cmd.args[1]:
            raise ParseError("STATUS needs a mailbox and a list of items")
        name = mailbox_name(cmd.args[0])
        keys = [str(tok).upper() for tok in cmd.args[1]]
        for key in keys:
            if key not in _STATUS_ITEMS:
                raise ParseError(f"unknown STATUS item {key[:20]}")
        view = await self.backend.select(self.user, name)
        values = {
            "MESSAGES": len(view.messages),
            "RECENT": 0,
            "UIDNEXT": view.uid_next,
            "UIDVALIDITY": view.uid_validity,
            "HIGHESTMODSEQ": view.highest_modseq,
            "UNSEEN": sum(1 for m in view.messages if "\\Seen" not in m.flags),
        }
        items = " ".join(f"{k} {values[k]}" for k in keys)
        await send(
            b"* STATUS %s (%s)\r\n" % (quote(view.name), items.encode())
            + tagged(cmd.tag, "OK", "STATUS completed")
        )
        return Outcome()

    async def create(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 1:
            raise ParseError("CREATE needs one mailbox name")
        await self.backend.create(self.user, mailbox_name(cmd.args[0], trailing_delimiter_ok=True))
        await send(tagged(cmd.tag, "OK", "CREATE completed"))
        return Outcome()

    async def delete(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 1:
            raise ParseError("DELETE needs one mailbox name")
        name = mailbox_name(cmd.args[0])
        if name == self.mailbox:  # RFC 9051 §6.3.4: deleting the selected one deselects
            self.deselect()
            self.state = State.AUTHENTICATED
        await self.backend.delete(self.user, name)
        await send(tagged(cmd.tag, "OK", "DELETE completed"))
        return Outcome()

    async def rename(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 2:
            raise ParseError("RENAME needs two mailbox names")
        await self.backend.rename(
            self.user,
            mailbox_name(cmd.args[0]),
            mailbox_name(cmd.args[1], trailing_delimiter_ok=True),
        )
        await send(tagged(cmd.tag, "OK", "RENAME completed"))
        return Outcome()

    async def subscribe(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 1:
            raise ParseError(f"{cmd.name} needs one mailbox name")
        await self.backend.subscribe(self.user, mailbox_name(cmd.args[0]), cmd.name == "SUBSCRIBE")
        await send(tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        return Outcome()

    async def append(self, cmd: Command, send: Send) -> Outcome:
        args = list(cmd.args)
        if len(args) < 2 or not isinstance(args[-1], bytes):
            raise ParseError("APPEND needs a mailbox name and a message literal")
        name = mailbox_name(args[0])
        flags: frozenset[str] = frozenset()
        when = None
        middle = args[1:-1]
        if middle and isinstance(middle[0], list):
            flags = parse_flags(middle.pop(0))
        if middle:
            when = parse_date_time(middle.pop(0))
        if middle:
            raise ParseError("APPEND: unexpected argument before the message")
        data = args[-1]
        if not data:
            raise No("[CANNOT] Empty message")
        validity, uid = await self.backend.append(self.user, name, data, flags, when, self.remote)
        if name == self.mailbox:
            await self.sync(send)
        await send(tagged(cmd.tag, "OK", f"[APPENDUID {validity} {uid}] APPEND completed"))
        return Outcome()


def _with_parents(entries: list[MailboxEntry]) -> list[tuple[MailboxEntry, list[str]]]:
    """Entries with LIST attributes, plus the unselectable levels that only hold children."""
    names = {e.name for e in entries}
    parents: set[str] = set()
    for e in entries:
        parts = e.name.split("/")
        parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    out: list[tuple[MailboxEntry, list[str]]] = []
    for e in entries:
        attrs = ["\\HasChildren" if e.name in parents else "\\HasNoChildren"]
        if e.special_use:
            attrs.append(e.special_use)
        out.append((e, attrs))
    for p in sorted(parents - names):
        out.append(
            (MailboxEntry(p, subscribed=False, selectable=False), ["\\Noselect", "\\HasChildren"])
        )
    return out
