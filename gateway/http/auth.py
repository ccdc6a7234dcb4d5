"""Who is calling: the bearer-token check and the scope each route demands.

RFC 6750 bearer tokens: pli's API tokens (:mod:`gateway.mailstore.tokens`) or, when an
issuer is configured, OpenID Connect JWTs (:mod:`gateway.http.oidc`); without a token, a
verified TLS client certificate (:mod:`gateway.http.mtls`). A missing, malformed,
unknown, revoked or expired token gets the same 401 (with ``WWW-Authenticate``)
so the answer never says which tokens exist; a valid token without the route's
scope gets 403 ``insufficient-scope``. The outcome is left on the request for
the call recorder to audit. This module never logs or audits a token secret.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.http.mtls import CERT_SCOPES, CertAuthority, peer_certificate
from gateway.http.oidc import OidcUnavailable, OidcVerifier
from gateway.http.problems import RETRY_AFTER, ApiProblem
from gateway.mailstore.tokens import TokenService, split_token

__all__ = ["CALLER_KEY", "FAILURE_KEY", "Caller", "RateLimiter", "bearer_dependency"]

CALLER_KEY = "pli_caller"  # request.state: the authenticated Caller
FAILURE_KEY = "pli_auth_failure"  # request.state: (actor, reason) of a refused call


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: ``token:<id>`` (pli's API tokens) or ``oidc:<sub>``."""

    actor: str
    mailbox: str  # "" for an auditor without a mailbox
    scopes: frozenset[str]
    remote: str


def _refuse(
    request: Request, actor: str, reason: str, code: str, detail: str, scope: str = ""
) -> ApiProblem:
    setattr(request.state, FAILURE_KEY, (actor, reason))
    if code == "unauthorized":
        # RFC 6750 §3: the challenge; no error code when no token was sent (§3.1).
        challenge = 'Bearer realm="pli"' + (
            ', error="invalid_token"' if reason != "missing" else ""
        )
        return ApiProblem(code, detail, headers={"WWW-Authenticate": challenge})
    challenge = f'Bearer realm="pli", error="insufficient_scope", scope="{scope}"'
    return ApiProblem(code, detail, headers={"WWW-Authenticate": challenge})


class RateLimiter:
    """Calls per token per fixed one-minute window, in this process (each instance counts
    its own share: behind a load balancer over n instances, a token gets n times the limit).

    Memory is bounded: windows that ended are dropped when the table grows.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def retry_after(self, key: str) -> int:
        """0 if the call may go ahead (and count it), else seconds until the next window."""
        if self.per_minute <= 0:
            return 0
        now = self._clock()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= 60:
            start, count = now, 0
        if count >= self.per_minute:
            return max(1, math.ceil(60 - (now - start)))
        if len(self._windows) > 10_000:
            self._windows = {k: v for k, v in self._windows.items() if now - v[0] < 60}
        self._windows[key] = (start, count + 1)
        return 0


def bearer_dependency(
    tokens: TokenService,
    limiter: RateLimiter | None = None,
    oidc: OidcVerifier | None = None,
    certs: CertAuthority | None = None,
) -> Callable[[str], Callable[..., Awaitable[Caller]]]:
    """A factory of FastAPI dependencies: ``needs("send")`` checks token and scope."""
    scheme = HTTPBearer(
        auto_error=False,
        description="An API token (pli_<id>.<secret>)"
        + (" or an OpenID Connect access token (JWT)" if oidc else ""),
    )

    async def identify(request: Request, token: str) -> tuple[str, Caller | None]:
        remote = request.client.host if request.client else ""
        parts = split_token(token)
        if parts is not None:
            info = await tokens.check(token)
            caller = Caller(info.actor, info.mailbox, info.scopes, remote) if info else None
            return f"token:{parts[0]}", caller
        if oidc is None or token.count(".") != 2:
            return "(invalid)", None
        try:
            ident = await oidc.verify(token)
        except OidcUnavailable:
            setattr(request.state, FAILURE_KEY, ("(oidc)", "jwks-unavailable"))
            raise ApiProblem(
                "unavailable",
                "The identity provider's keys cannot be fetched",
                headers={"Retry-After": str(RETRY_AFTER)},
            ) from None
        if ident is None:
            return "(oidc)", None
        actor = f"oidc:{ident.subject}"
        return actor, Caller(actor, ident.mailbox, ident.scopes, remote)

    def needs(scope: str) -> Callable[..., Awaitable[Caller]]:
        async def dependency(
            request: Request,
            credentials: HTTPAuthorizationCredentials | None = Security(scheme),  # noqa: B008
        ) -> Caller:
            cert = peer_certificate(request.scope) if certs is not None else None
            if credentials is None and cert is not None and certs is not None:
                # Mutual TLS: the certificate the handshake verified stands for a mailbox.
                actor = certs.actor(cert)
                mailbox = await certs.mailbox(cert)
                caller = (
                    Caller(
                        actor, mailbox, CERT_SCOPES, request.client.host if request.client else ""
                    )
                    if mailbox
                    else None
                )
            elif credentials is None:
                raise _refuse(
                    request, "(anonymous)", "missing", "unauthorized", "A bearer token is required"
                )
            else:
                actor, caller = await identify(request, credentials.credentials)
            if caller is None:
                raise _refuse(
                    request,
                    actor,
                    "bad-token",
                    "unauthorized",
                    "The token is invalid, revoked or expired",
                )
            if scope not in caller.scopes or (scope != "audit" and not caller.mailbox):
                raise _refuse(
                    request,
                    actor,
                    "insufficient-scope",
                    "insufficient-scope",
                    f"This call needs the '{scope}' scope and a mailbox",
                    scope,
                )
            wait = limiter.retry_after(actor) if limiter is not None else 0
            if wait:
                setattr(request.state, FAILURE_KEY, (actor, "rate-limited"))
                # RFC 6585 §4 with RFC 9110 §10.2.3.
                raise ApiProblem(
                    "rate-limited",
                    "Too many calls for this token, slow down",
                    headers={"Retry-After": str(wait)},
                )
            setattr(request.state, CALLER_KEY, caller)
            return caller

        return dependency

    return needs
