"""API tokens: creation, listing, revocation and the check of a presented bearer token.

A token is ``pli_<id>.<secret>``: the id is public (it names the token in the
audit trail as ``token:<id>`` and in ``pli token list``), the secret is 32
random bytes shown once at creation. Only the SHA-256 digest of the secret is
stored. This module owns the ``api_token`` table and must never log, audit or
return a secret after creation.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.db import utc as _utc
from gateway.mailstore.tables import api_token

__all__ = ["SCOPES", "TokenInfo", "TokenService", "hash_secret", "split_token"]

SCOPES = ("send", "read", "audit")
_PREFIX = "pli_"
_TOKEN = re.compile(r"^pli_([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as pli knows it (never the secret)."""

    id: str
    mailbox: str
    scopes: frozenset[str]
    label: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def actor(self) -> str:
        return f"token:{self.id}"

    def usable(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def hash_secret(secret: str) -> str:
    """SHA-256 of the secret, hex.

    A plain fast hash is right here, unlike for passwords: the secret is 32
    bytes from ``secrets`` (256 bits of entropy), so no dictionary or brute
    force can invert the digest, and a slow KDF (argon2) would only turn every
    API call into a CPU cost an attacker can trigger. Salting adds nothing
    when every secret is unique and random.
    """
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else None (nothing is looked up)."""
    m = _TOKEN.match(token)
    return (m.group(1), m.group(2)) if m else None


class TokenService:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        mailbox: str,
        scopes: Collection[str],
        *,
        label: str = "",
        created_by: str = "",
        expires_days: int | None = None,
        now: dt.datetime | None = None,
    ) -> tuple[TokenInfo, str]:
        """Store a new token; return it and the full bearer value (shown once)."""
        unknown = set(scopes) - set(SCOPES)
        if not scopes or unknown:
            raise ValueError(f"scopes must be among {', '.join(SCOPES)}")
        now = now or dt.datetime.now(dt.UTC)
        token_id = secrets.token_hex(6)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        expires = now + dt.timedelta(days=expires_days) if expires_days else None
        ordered = " ".join(s for s in SCOPES if s in scopes)
        async with self._engine.begin() as conn:
            await conn.execute(
                api_token.insert().values(
                    id=token_id,
                    secret_sha256=hash_secret(secret),
                    mailbox=mailbox,
                    scopes=ordered,
                    label=label[:64],
                    created_by=created_by[:320],
                    created_at=now,
                    expires_at=expires,
                    revoked_at=None,
                )
            )
        info = TokenInfo(
            token_id, mailbox, frozenset(scopes), label[:64], created_by[:320], now, expires, None
        )
        return info, f"{_PREFIX}{token_id}.{secret}"

    async def list(self) -> list[TokenInfo]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(api_token).order_by(api_token.c.created_at))).all()
        return [self._info(r) for r in rows]

    async def revoke(self, token_id: str, now: dt.datetime | None = None) -> bool:
        """Revoke a token; False if there is no such (unrevoked) token."""
        async with self._engine.begin() as conn:
            res = await conn.execute(
                update(api_token)
                .where(api_token.c.id == token_id, api_token.c.revoked_at.is_(None))
                .values(revoked_at=now or dt.datetime.now(dt.UTC))
            )
        return bool(res.rowcount)

    async def revoke_mailbox(self, mailbox: str, now: dt.datetime | None = None) -> int:
        """Revoke every live token of a mailbox (it was closed); return how many."""
        async with self._engine.begin() as conn:
            res = await conn.execute(
                update(api_token)
                .where(api_token.c.mailbox == mailbox.lower(), api_token.c.revoked_at.is_(None))
                .values(revoked_at=now or dt.datetime.now(dt.UTC))
            )
        return int(res.rowcount)

    async def check(self, token: str, now: dt.datetime | None = None) -> TokenInfo | None:
        """The token's info if it is well formed, known, unrevoked and unexpired."""
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(api_token).where(api_token.c.id == token_id))
            ).one_or_none()
        if row is None:
            return None
        # Constant-time comparison of the digests: no timing hint about a near match.
        if not hmac.compare_digest(row.secret_sha256, hash_secret(secret)):
            return None
        info = self._info(row)
        return info if info.usable(now or dt.datetime.now(dt.UTC)) else None

    @staticmethod
    def _info(r: Row[Any]) -> TokenInfo:
        row = r._mapping
        return TokenInfo(
            id=row["id"],
            mailbox=row["mailbox"],
            scopes=frozenset(row["scopes"].split()),
            label=row["label"],
            created_by=row["created_by"],
            created_at=_utc(row["created_at"]) or dt.datetime.now(dt.UTC),
            expires_at=_utc(row["expires_at"]),
            revoked_at=_utc(row["revoked_at"]),
        )
