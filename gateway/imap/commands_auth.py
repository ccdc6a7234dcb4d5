"""Commands of any state and of the not-authenticated state (RFC 3501 §6.1, §6.2), plus
ENABLE (RFC 5161) and NAMESPACE (RFC 2342).

Login goes through the backend only after TLS (LOGINDISABLED before it), and
the session learns nothing but the principal the backend returns. Credentials
and authorisation identities never reach a log line beyond the user name.
"""

from __future__ import annotations

import base64
import binascii

import structlog

from gateway.base import events
from gateway.base.errors import LoginThrottled
from gateway.core.ports import SHARED_PREFIX
from gateway.imap.parser import Command, ParseError
from gateway.imap.responses import quote, tagged
from gateway.imap.session_base import (
    No,
    Outcome,
    Send,
    SessionBase,
    State,
    astring,
)

__all__ = ["AuthCommands"]

log = structlog.get_logger("pli.imap")

# Everything pli serves; RIGHTS=texk says t/e/x/k are rights of their own (RFC 4314 §2.1).
_CAPABILITIES = (
    "IMAP4rev1",
    "LITERAL+",
    "ID",
    "UNSELECT",
    "IDLE",
    "UIDPLUS",
    "MOVE",
    "NAMESPACE",
    "ENABLE",
    "SPECIAL-USE",
    "CONDSTORE",
    "CHILDREN",
    "SASL-IR",
    "ACL",
    "RIGHTS=texk",
)


class AuthCommands(SessionBase):
    def capabilities(self) -> str:
        caps = list(_CAPABILITIES)
        if not self.tls_active:
            if self.starttls_available:
                caps.append("STARTTLS")
            caps.append("LOGINDISABLED")
        elif self.state is State.NOT_AUTHENTICATED:
            caps.append("AUTH=PLAIN")
        return " ".join(caps)

    async def capability(self, cmd: Command, send: Send) -> Outcome:
        await send(
            f"* CAPABILITY {self.capabilities()}\r\n{cmd.tag} OK CAPABILITY completed\r\n".encode()
        )
        return Outcome()

    async def noop(self, cmd: Command, send: Send) -> Outcome:
        # RFC 3501 §6.1.2: NOOP (and CHECK) are how a client polls for changes.
        await self.sync(send)
        await send(tagged(cmd.tag, "OK", f"{cmd.name} completed"))
        return Outcome()

    async def logout(self, cmd: Command, send: Send) -> Outcome:
        self.state = State.LOGOUT
        await send(f"* BYE pli logging out\r\n{cmd.tag} OK LOGOUT completed\r\n".encode())
        return Outcome(close=True)

    async def id(self, cmd: Command, send: Send) -> Outcome:
        # RFC 2971: the client's own ID is ignored (it may hold identifying details).
        await send(f'* ID ("name" "pli")\r\n{cmd.tag} OK ID completed\r\n'.encode())
        return Outcome()

    async def enable(self, cmd: Command, send: Send) -> Outcome:
        if not cmd.args:
            raise ParseError("ENABLE needs at least one capability")
        enabled = []
        for tok in cmd.args:
            name = astring(tok, "capability").upper()
            if name == "CONDSTORE" and not self.condstore:  # RFC 7162 §3.1
                self.condstore = True
                enabled.append(name)
        untagged = f"* ENABLED {' '.join(enabled)}".rstrip() + "\r\n"  # RFC 5161 §3.2
        await send(untagged.encode() + tagged(cmd.tag, "OK", "ENABLE completed"))
        return Outcome()

    async def namespace(self, cmd: Command, send: Send) -> Outcome:
        # RFC 2342 §5: personal, other users' (none), shared (delegated ORG/APP mailboxes).
        await send(
            b'* NAMESPACE (("" "/")) NIL (('
            + quote(SHARED_PREFIX)
            + b' "/"))\r\n'
            + tagged(cmd.tag, "OK", "NAMESPACE completed")
        )
        return Outcome()

    # --- not authenticated ---------------------------------------------------------
    async def starttls(self, cmd: Command, send: Send) -> Outcome:
        if self.tls_active or not self.starttls_available:
            await send(tagged(cmd.tag, "BAD", "TLS already active or not available"))
            return Outcome()
        if cmd.args:
            raise ParseError("STARTTLS takes no arguments")
        # The server sends the tagged OK itself: it must stop reading plaintext first.
        return Outcome(starttls=True)

    async def _login_as(
        self, cmd: Command, send: Send, user: str, password: str, authz: str = ""
    ) -> Outcome:
        try:
            principal = await self.backend.authenticate(user, password, self.remote)
        except LoginThrottled:
            log.info(events.IMAP_LOGIN, result="throttled", mechanism=cmd.name)
            # RFC 5530 UNAVAILABLE: temporary; a good client waits instead of re-prompting.
            await send(
                tagged(cmd.tag, "NO", "[UNAVAILABLE] Too many failed logins, try again later")
            )
            return Outcome()
        if (
            principal is not None
            and authz
            and authz.lower() not in (user.lower(), principal.address.lower())
        ):
            # RFC 4616 §2: acting as another identity (proxy authorisation) is not offered.
            log.info(
                events.IMAP_LOGIN,
                result="authz-refused",
                user=principal.address,
                mechanism=cmd.name,
            )
            await send(
                tagged(cmd.tag, "NO", "[AUTHORIZATIONFAILED] Cannot act as another identity")
            )
            return Outcome()
        log.info(
            events.IMAP_LOGIN,
            result="ok" if principal else "fail",
            user=principal.address if principal else user[:120],
            mechanism=cmd.name,
        )
        if principal is None:
            self.login_failures += 1
            await send(tagged(cmd.tag, "NO", "[AUTHENTICATIONFAILED] Invalid credentials"))
            if self.login_failures >= self.max_login_failures:
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
            raise No("[PRIVACYREQUIRED] Use STARTTLS before logging in")

    async def login(self, cmd: Command, send: Send) -> Outcome:
        self._require_tls()
        if len(cmd.args) != 2:
            raise ParseError("LOGIN needs a user name and a password")
        return await self._login_as(
            cmd, send, astring(cmd.args[0], "user name"), astring(cmd.args[1], "password")
        )

    async def authenticate(self, cmd: Command, send: Send) -> Outcome:
        self._require_tls()
        if not cmd.args or not isinstance(cmd.args[0], str) or len(cmd.args) > 2:
            raise ParseError("AUTHENTICATE needs a mechanism")
        if cmd.args[0].upper() != "PLAIN":
            raise No("[CANNOT] Only AUTHENTICATE PLAIN is supported")
        response = b"="
        if len(cmd.args) == 2:  # RFC 4959 SASL-IR; "=" is an empty initial response
            response = astring(cmd.args[1], "initial response").encode()
        if response == b"=":
            response = (await self.ask(b"+ \r\n")).strip()
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
