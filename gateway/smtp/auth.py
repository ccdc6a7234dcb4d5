"""SMTP AUTH for the submission port: PLAIN and LOGIN, only after TLS, checked asynchronously.

aiosmtpd's built-in mechanisms call a synchronous authenticator, which would
run argon2 on the event loop; these overrides decode the same SASL exchanges
(RFC 4616 PLAIN, the de-facto LOGIN) and await the mail store's login, which
throttles and audits. Credentials never reach a log line.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import MISSING, AuthResult

from gateway.base.errors import LoginThrottled
from gateway.smtp import replies
from gateway.smtp.handler import SmtpHandler
from gateway.smtp.server import PliSMTP

__all__ = ["LoginCheck", "SubmissionSMTP"]

# (username, password, remote address) -> the canonical address, or None if refused
LoginCheck = Callable[[str, str, str], Awaitable[str | None]]


class SubmissionSMTP(PliSMTP):
    """The submission listener: AUTH required before MAIL, only over TLS."""

    def __init__(
        self, handler: SmtpHandler, session_id: str, *, login_check: LoginCheck, **kwargs: Any
    ) -> None:
        super().__init__(handler, session_id, **kwargs)
        self._login_check = login_check

    async def _finish(self, login: bytes, password: bytes) -> AuthResult:
        peer = self.session.peer if self.session else None
        remote = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        try:
            user, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        try:
            address = await self._login_check(user, secret, remote)
        except LoginThrottled as exc:
            await self.push(replies.for_error(exc))
            return AuthResult(success=False, handled=True)
        if address is None:  # handled=False: aiosmtpd answers 535 5.7.8
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=address)

    async def _b64(self, value: str | bytes) -> bytes | None:
        try:
            raw = value.encode() if isinstance(value, str) else value
            return b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            await self.push(replies.BAD_BASE64)
            return None

    async def auth_PLAIN(self, _: object, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            decoded = await self._b64(args[1])
            if decoded is None:
                return AuthResult(success=False, handled=True)
            blob = decoded
        parts = blob.split(b"\x00")
        if len(parts) != 3:  # RFC 4616: [authzid] NUL authcid NUL passwd
            await self.push(replies.BAD_PLAIN)
            return AuthResult(success=False, handled=True)
        return await self._finish(parts[1], parts[2])

    async def auth_LOGIN(self, _: object, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth("Username:")
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            decoded = await self._b64(args[1])
            if decoded is None:
                return AuthResult(success=False, handled=True)
            login = decoded
        password = await self.challenge_auth("Password:")
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._finish(login, password)
