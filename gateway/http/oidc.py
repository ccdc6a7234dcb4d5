"""OpenID Connect bearer tokens: a JWT signed by the configured issuer, checked against its JWKS.

The signature (asymmetric algorithms only), issuer, audience, expiry and
issue time are all required (RFC 7519 §4.1, RFC 9068 §4); the mailbox comes
from one configured claim and the API scopes from the ``scope`` claim. The
JWKS is fetched by PyJWT's blocking client, so in a thread, with a timeout,
and cached (keys re-fetched when an unknown ``kid`` appears). A JWKS that
cannot be reached is a temporary failure (503), never an acceptance. Tokens
and claims other than the subject are never logged or audited.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import jwt
import structlog

from directory.base import InvalidAddress, normalize_address
from gateway.base import events
from gateway.base.config import HttpSettings
from gateway.base.errors import Unavailable
from gateway.mailstore.tokens import SCOPES

__all__ = ["OidcIdentity", "OidcUnavailable", "OidcVerifier"]

log = structlog.get_logger("pli.http")
_LEEWAY = 30  # seconds of clock skew tolerated on exp/iat/nbf


class OidcUnavailable(Unavailable):
    """The issuer's keys cannot be fetched now: try again later."""

    default_reason = "oidc-unavailable"

    def __init__(self) -> None:
        super().__init__("The identity provider cannot be reached")


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    subject: str
    mailbox: str
    scopes: frozenset[str]


class OidcVerifier:
    def __init__(self, settings: HttpSettings) -> None:
        self._issuer = settings.oidc_issuer
        self._audience = settings.oidc_audience
        self._claim = settings.oidc_mailbox_claim
        self._algorithms = list(settings.oidc_algorithms)
        self._jwks = jwt.PyJWKClient(
            settings.oidc_jwks_url, cache_keys=True, lifespan=300, timeout=5
        )

    async def verify(self, token: str) -> OidcIdentity | None:
        """The identity a valid token carries; None for any invalid token."""
        try:
            key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            log.warning(events.HTTP_OIDC_JWKS_UNAVAILABLE, error=type(exc).__name__)
            raise OidcUnavailable() from exc
        except jwt.PyJWTError:
            return None  # malformed, or signed with a key the issuer does not publish
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=_LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            log.info(events.HTTP_OIDC_REFUSED, error=type(exc).__name__)
            return None
        try:
            mailbox = normalize_address(str(claims.get(self._claim, "")))
        except InvalidAddress:
            mailbox = ""  # an auditor's identity may carry no mailbox
        granted = str(claims.get("scope", "")).split()
        return OidcIdentity(
            subject=str(claims["sub"])[:200],
            mailbox=mailbox,
            scopes=frozenset(s for s in granted if s in SCOPES),
        )
