"""The IMAP session state machine (RFC 3501 §3): what each command may do, in which state.

It turns parsed commands into calls on :class:`ImapBackend` and into response
bytes; the server owns sockets, TLS and limits. A session only ever names the
authenticated principal to the backend, so no command can reach another
user's mailbox. Credentials never reach a log line.
"""

from __future__ import annotations

import base64
import binascii
import enum
import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from gateway import events
from gateway.errors import LoginThrottled
from gateway.imap.backend import (
    ImapBackend,
    MailboxNotFound,
    MailboxView,
    MessageInfo,
    MessageNotFound,
    Principal,
)
from gateway.imap.fetch import format_flags, parse_fetch_items, render_fetch
from gateway.imap.parser import Command, ParseError, Token, parse_sequence_set
from gateway.imap.responses import error_reply, quote, tagged

__all__ = ["Outcome", "Session", "State"]

log = structlog.get_logger("pli.imap")

Send = Callable[[bytes], Awaitable[None]]
Ask = Callable[[bytes], Awaitable[bytes]]  # send a continuation, read the client's line

_SYSTEM_FLAGS = r"\Answered \Flagged \Deleted \Seen \Draft"


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


class _No(Exception):
    """Answer the command with a tagged NO (text may start with a [CODE])."""


def _astring(tok: Token, what: str) -> str:
    if isinstance(tok, bytes):
        try:
            return tok.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(f"{what} is not UTF-8") from None
    if isinstance(tok, str):
        return tok
    raise ParseError(f"{what} must be a string")


def _mailbox_name(tok: Token) -> str:
    name = _astring(tok, "mailbox name")
    if not name or len(name) > 255 or any(c in name for c in "\x00\r\n"):
        raise _No("[CANNOT] Invalid mailbox name")
    return "INBOX" if name.upper() == "INBOX" else name


def _matches(pattern: str, name: str) -> bool:
    if pattern in ("*", "%"):
        return True
    escaped = pattern.replace("[", "[[]").replace("%", "*")
    return fnmatch.fnmatchcase(name.upper() if name == "INBOX" else name,
                               escaped.upper() if name == "INBOX" else escaped)


class Session:
    """One connection's IMAP state; :meth:`handle` answers one parsed command."""

    def __init__(self, backend: ImapBackend, *, remote: str, tls_active: bool,
                 starttls_available: bool, ask: Ask, session_id: str = "-",
                 max_login_failures: int = 3) -> None:
        self._backend = backend
        self.remote = remote
        self.session_id = session_id
        self._max_login_failures = max_login_failures
        self._login_failures = 0
        self.tls_active = tls_active
        self._starttls_available = starttls_available
        self._ask = ask
        self.state = State.NOT_AUTHENTICATED
        self.principal: Principal | None = None
        self._view: MailboxView | None = None
        self._flags: dict[int, frozenset[str]] = {}
        self._readonly = False

    def capabilities(self) -> str:
        caps = ["IMAP4rev1", "LITERAL+", "ID", "UNSELECT"]
        if not self.tls_active:
            if self._starttls_available:
                caps.append("STARTTLS")
            caps.append("LOGINDISABLED")
        elif self.state is State.NOT_AUTHENTICATED:
            caps.append("AUTH=PLAIN")
        return " ".join(caps)

    async def handle(self, cmd: Command, send: Send) -> Outcome:
        """Run one command; every failure becomes a tagged reply, never an exception.

        Only the command name is logged: arguments may hold credentials or
        mailbox names chosen by the user.
        """
        handler = _HANDLERS.get(cmd.name)
        log.debug(events.IMAP_COMMAND, command=cmd.name if handler else "unknown")
        if handler is None:
            await send(tagged(cmd.tag, "BAD", "Unknown command"))
            return Outcome()
        allowed, method = handler
        if self.state not in allowed:
            await send(tagged(cmd.tag, "BAD", f"{cmd.name} not allowed in state "
                                              f"{self.state.value}"))
            return Outcome()
        try:
            return await method(self, cmd, send)
        except _No as exc:
            await send(tagged(cmd.tag, "NO", str(exc)))
        except ParseError as exc:
            await send(tagged(cmd.tag, "BAD", exc.reason))
        except MailboxNotFound:
            await send(tagged(cmd.tag, "NO", "[NONEXISTENT] No such mailbox"))
        except (ConnectionError, OSError):
            raise  # the peer is gone: the server closes the connection
        except Exception as exc:  # a bug or a dependency down: answer, log, keep the session
            log.error(events.IMAP_COMMAND, command=cmd.name, result="exception",
                      error=type(exc).__name__, exc_info=exc)
            await send(error_reply(cmd.tag, exc, self.session_id))
        return Outcome()

    # --- any state -----------------------------------------------------------------
    async def _capability(self, cmd: Command, send: Send) -> Outcome:
        await send(f"* CAPABILITY {self.capabilities()}\r\n{cmd.tag} OK CAPABILITY "
                   "completed\r\n".encode())
        return Outcome()

    async def _noop(self, cmd: Command, send: Send) -> Outcome:
        if self.state is State.SELECTED and self._view is not None and self.principal:
            fresh = await self._backend.select(self.principal, self._view.name)
            old = [m.uid for m in self._view.messages]
            new = [m.uid for m in fresh.messages]
            # Only announce arrivals: without EXPUNGE responses (not served yet), adopting a
            # view where messages vanished would silently renumber the client's sequence.
            if (len(new) > len(old) and new[: len(old)] == old
                    and fresh.uid_validity == self._view.uid_validity):
                self._adopt(fresh)
                await send(b"* %d EXISTS\r\n* 0 RECENT\r\n" % len(new))
        await send(tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        return Outcome()

    async def _logout(self, cmd: Command, send: Send) -> Outcome:
        self.state = State.LOGOUT
        await send(f"* BYE pli logging out\r\n{cmd.tag} OK LOGOUT completed\r\n".encode())
        return Outcome(close=True)

    async def _id(self, cmd: Command, send: Send) -> Outcome:
        await send(f'* ID ("name" "pli")\r\n{cmd.tag} OK ID completed\r\n'.encode())
        return Outcome()

    # --- not authenticated ---------------------------------------------------------
    async def _starttls(self, cmd: Command, send: Send) -> Outcome:
        if self.tls_active or not self._starttls_available:
            await send(tagged(cmd.tag, "BAD", "TLS already active or not available"))
            return Outcome()
        if cmd.args:
            raise ParseError("STARTTLS takes no arguments")
        # The server sends the tagged OK itself: it must stop reading plaintext first.
        return Outcome(starttls=True)

    async def _login_as(self, cmd: Command, send: Send, user: str, password: str,
                        authz: str = "") -> Outcome:
        try:
            principal = await self._backend.authenticate(user, password, self.remote)
        except LoginThrottled:
            log.info(events.IMAP_LOGIN, result="throttled", mechanism=cmd.name)
            # RFC 5530 UNAVAILABLE: temporary; a good client waits instead of re-prompting.
            await send(tagged(cmd.tag, "NO", "[UNAVAILABLE] Too many failed logins, "
                                             "try again later"))
            return Outcome()
        if principal is not None and authz and authz.lower() not in (
                user.lower(), principal.address.lower()):
            # RFC 4616 §2: acting as another identity (proxy authorisation) is not offered.
            log.info(events.IMAP_LOGIN, result="authz-refused", user=principal.address,
                     mechanism=cmd.name)
            await send(tagged(cmd.tag, "NO", "[AUTHORIZATIONFAILED] Cannot act as another "
                                             "identity"))
            return Outcome()
        log.info(events.IMAP_LOGIN, result="ok" if principal else "fail",
                 user=principal.address if principal else user[:120], mechanism=cmd.name)
        if principal is None:
            self._login_failures += 1
            await send(tagged(cmd.tag, "NO", "[AUTHENTICATIONFAILED] Invalid credentials"))
            if self._login_failures >= self._max_login_failures:
                await send(b"* BYE Too many failed logins\r\n")
                return Outcome(close=True)
            return Outcome()
        self.principal = principal
        self.state = State.AUTHENTICATED
        await send(tagged(cmd.tag, "OK", f"[CAPABILITY {self.capabilities()}] Logged in"))
        return Outcome()

    def _require_tls(self) -> None:
        if not self.tls_active:
            # RFC 3501 §6.2.3 LOGINDISABLED; RFC 5530 PRIVACYREQUIRED.
            raise _No("[PRIVACYREQUIRED] Use STARTTLS before logging in")

    async def _login(self, cmd: Command, send: Send) -> Outcome:
        self._require_tls()
        if len(cmd.args) != 2:
            raise ParseError("LOGIN needs a user name and a password")
        return await self._login_as(cmd, send, _astring(cmd.args[0], "user name"),
                                    _astring(cmd.args[1], "password"))

    async def _authenticate(self, cmd: Command, send: Send) -> Outcome:
        self._require_tls()
        if not cmd.args or not isinstance(cmd.args[0], str) or len(cmd.args) > 2:
            raise ParseError("AUTHENTICATE needs a mechanism")
        if cmd.args[0].upper() != "PLAIN":
            raise _No("[CANNOT] Only AUTHENTICATE PLAIN is supported")
        response = b"="
        if len(cmd.args) == 2:  # RFC 4959 SASL-IR; "=" is an empty initial response
            response = _astring(cmd.args[1], "initial response").encode()
        if response == b"=":
            response = (await self._ask(b"+ \r\n")).strip()
        if response == b"*":  # RFC 3501 §6.2.2: the client cancels
            await send(tagged(cmd.tag, "BAD", "Authentication cancelled"))
            return Outcome()
        try:
            decoded = base64.b64decode(response, validate=True)
            authz, user, password = decoded.decode("utf-8").split("\x00")
        except (binascii.Error, ValueError):
            await send(tagged(cmd.tag, "BAD", "Malformed PLAIN response"))
            return Outcome()
        return await self._login_as(cmd, send, user, password, authz)

    # --- authenticated ---------------------------------------------------------------
    def _adopt(self, view: MailboxView) -> None:
        self._view = view
        self._flags = {m.uid: m.flags for m in view.messages}

    async def _select(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 1:
            raise ParseError(f"{cmd.name} needs one mailbox name")
        assert self.principal is not None
        self.state, self._view = State.AUTHENTICATED, None  # RFC 3501 §6.3.1: deselect first
        view = await self._backend.select(self.principal, _mailbox_name(cmd.args[0]))
        self._adopt(view)
        self._readonly = cmd.name == "EXAMINE"
        self.state = State.SELECTED
        unseen = next((i for i, m in enumerate(view.messages, 1) if r"\Seen" not in m.flags),
                      None)
        lines = [
            f"* FLAGS ({_SYSTEM_FLAGS})",
            f"* OK [PERMANENTFLAGS ({_SYSTEM_FLAGS})] Limited",
            f"* {len(view.messages)} EXISTS",
            "* 0 RECENT",
            f"* OK [UIDVALIDITY {view.uid_validity}] UIDs valid",
            f"* OK [UIDNEXT {view.uid_next}] Predicted next UID",
        ]
        if unseen:
            lines.append(f"* OK [UNSEEN {unseen}] First unseen")
        mode = "READ-ONLY" if self._readonly else "READ-WRITE"
        lines.append(f"{cmd.tag} OK [{mode}] {cmd.name} completed")
        await send(("\r\n".join(lines) + "\r\n").encode())
        return Outcome()

    async def _list(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 2:
            raise ParseError(f"{cmd.name} needs a reference and a pattern")
        assert self.principal is not None
        _astring(cmd.args[0], "reference")  # flat namespace: the reference changes nothing
        pattern = _astring(cmd.args[1], "pattern")
        out: list[bytes] = []
        if pattern == "":  # RFC 3501 §6.3.8: the hierarchy delimiter and root
            out.append(b'* %s (\\Noselect) "/" ""\r\n' % cmd.name.encode())
        else:
            for name in await self._backend.list_mailboxes(self.principal):
                if _matches(pattern, name):
                    out.append(b'* %s (\\HasNoChildren) "/" %s\r\n'
                               % (cmd.name.encode(), quote(name)))
        out.append(tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        await send(b"".join(out))
        return Outcome()

    async def _status(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 2 or not isinstance(cmd.args[1], list):
            raise ParseError("STATUS needs a mailbox and a list of items")
        assert self.principal is not None
        name = _mailbox_name(cmd.args[0])
        view = await self._backend.select(self.principal, name)
        values = {
            "MESSAGES": len(view.messages), "RECENT": 0, "UIDNEXT": view.uid_next,
            "UIDVALIDITY": view.uid_validity,
            "UNSEEN": sum(1 for m in view.messages if r"\Seen" not in m.flags),
        }
        items = []
        for tok in cmd.args[1]:
            key = str(tok).upper()
            if key not in values:
                raise ParseError(f"unknown STATUS item {key[:20]}")
            items.append(f"{key} {values[key]}")
        await send(b"* STATUS %s (%s)\r\n" % (quote(name), " ".join(items).encode())
                   + tagged(cmd.tag, "OK", "STATUS completed"))
        return Outcome()

    # --- selected --------------------------------------------------------------------
    def _targets(self, set_token: Token, by_uid: bool) -> list[tuple[int, MessageInfo]]:
        assert self._view is not None
        if not isinstance(set_token, str):
            raise ParseError("invalid sequence set")
        msgs = self._view.messages
        if not msgs and "*" in set_token:
            parse_sequence_set(set_token, 1)  # still refuse a malformed set
            return []  # "*" in an empty mailbox names nothing (RFC 9051 §6.4.5 note)
        if by_uid:
            largest = msgs[-1].uid if msgs else 0
            ranges = parse_sequence_set(set_token, largest)
            return [(i, m) for i, m in enumerate(msgs, 1)
                    if any(lo <= m.uid <= hi for lo, hi in ranges)]
        ranges = parse_sequence_set(set_token, len(msgs))
        if any(hi > len(msgs) for _, hi in ranges):
            raise ParseError("message sequence number out of range")
        wanted = sorted({n for lo, hi in ranges for n in range(lo, hi + 1)})
        return [(n, msgs[n - 1]) for n in wanted]

    async def _fetch(self, cmd: Command, send: Send) -> Outcome:
        by_uid = cmd.name == "UID FETCH"
        if len(cmd.args) != 2:
            raise ParseError("FETCH needs a sequence set and items")
        items = parse_fetch_items(cmd.args[1])
        if by_uid and not any(i.name == "UID" for i in items):
            items.insert(0, parse_fetch_items("UID")[0])
        assert self.principal is not None and self._view is not None
        targets = self._targets(cmd.args[0], by_uid)
        need_body = any(i.needs_body for i in items)
        mark_seen = not self._readonly and any(i.sets_seen for i in items)
        for seq, info in targets:
            body = None
            if need_body:
                try:
                    body = await self._backend.fetch_body(self.principal, self._view.name,
                                                          info.uid, self.remote)
                except MessageNotFound:
                    continue  # expunged by another session meanwhile
            flags = self._flags.get(info.uid, info.flags)
            shown = items
            if mark_seen and r"\Seen" not in flags:
                await self._backend.add_flags(self.principal, self._view.name, [info.uid],
                                              frozenset({r"\Seen"}))
                flags = self._flags[info.uid] = flags | {r"\Seen"}
                if not any(i.name == "FLAGS" for i in items):
                    shown = [*items, parse_fetch_items("FLAGS")[0]]
            await send(render_fetch(seq, info, shown, body, flags))
        await send(f"{cmd.tag} OK {cmd.name} completed\r\n".encode())
        return Outcome()

    async def _store(self, cmd: Command, send: Send) -> Outcome:
        if len(cmd.args) != 3 or not isinstance(cmd.args[1], str):
            raise ParseError("STORE needs a sequence set, an operation and flags")
        op = cmd.args[1].upper()
        if op not in ("+FLAGS", "+FLAGS.SILENT"):
            raise _No("[CANNOT] Only +FLAGS is supported yet")
        if self._readonly:
            raise _No("[READ-ONLY] Mailbox is read-only")
        raw = cmd.args[2] if isinstance(cmd.args[2], list) else [cmd.args[2]]
        by_name = {f.upper(): f for f in _SYSTEM_FLAGS.split()}
        if not raw or not all(isinstance(f, str) and f.upper() in by_name for f in raw):
            # RFC 3501 §7.1 PERMANENTFLAGS lists no \*: keywords and \Recent are refused.
            raise ParseError(f"STORE accepts only {_SYSTEM_FLAGS}")
        flags = frozenset(by_name[str(f).upper()] for f in raw)
        assert self.principal is not None and self._view is not None
        targets = self._targets(cmd.args[0], cmd.name == "UID STORE")
        await self._backend.add_flags(self.principal, self._view.name,
                                      [m.uid for _, m in targets], flags)
        for seq, info in targets:
            new = self._flags[info.uid] = self._flags.get(info.uid, info.flags) | flags
            if not op.endswith(".SILENT"):
                uid = f" UID {info.uid}" if cmd.name == "UID STORE" else ""
                await send(f"* {seq} FETCH (FLAGS {format_flags(new)}{uid})\r\n".encode())
        await send(f"{cmd.tag} OK {cmd.name} completed\r\n".encode())
        return Outcome()

    async def _close(self, cmd: Command, send: Send) -> Outcome:
        self.state, self._view = State.AUTHENTICATED, None
        await send(f"{cmd.tag} OK {cmd.name} completed\r\n".encode())
        return Outcome()

    async def _check(self, cmd: Command, send: Send) -> Outcome:
        await send(f"{cmd.tag} OK CHECK completed\r\n".encode())
        return Outcome()


_ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
_NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
_SEL = frozenset({State.SELECTED})
_HANDLERS: dict[str, tuple[frozenset[State],
                           Callable[[Session, Command, Send], Awaitable[Outcome]]]] = {
    "CAPABILITY": (_ANY, Session._capability),
    "NOOP": (_ANY, Session._noop),
    "LOGOUT": (_ANY, Session._logout),
    "ID": (_ANY, Session._id),
    "STARTTLS": (_NOT_AUTH, Session._starttls),
    "LOGIN": (_NOT_AUTH, Session._login),
    "AUTHENTICATE": (_NOT_AUTH, Session._authenticate),
    "SELECT": (_AUTH, Session._select),
    "EXAMINE": (_AUTH, Session._select),
    "LIST": (_AUTH, Session._list),
    "LSUB": (_AUTH, Session._list),
    "STATUS": (_AUTH, Session._status),
    "FETCH": (_SEL, Session._fetch),
    "UID FETCH": (_SEL, Session._fetch),
    "STORE": (_SEL, Session._store),
    "UID STORE": (_SEL, Session._store),
    "CLOSE": (_SEL, Session._close),
    "UNSELECT": (_SEL, Session._close),
    "CHECK": (_SEL, Session._check),
}
