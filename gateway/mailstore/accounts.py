"""Passwords of mailbox users: argon2id hashes, checked in a thread.

Argon2 is deliberately slow, so hashing never runs on the event loop. Each hash
also takes memory (argon2id, OWASP profile: 19 MiB, t=2, p=1), so at most
``max_parallel`` run at once: a burst of logins queues instead of exhausting
RAM. A login for an unknown address still spends one hash, so timing does not
reveal which addresses have accounts. Passwords are never logged or stored in clear.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.errors import WeakPassword
from gateway.mailstore.tables import account

__all__ = ["Accounts"]

MIN_PASSWORD_LENGTH = 8
T = TypeVar("T")


class Accounts:
    def __init__(
        self, engine: AsyncEngine, hasher: PasswordHasher | None = None, max_parallel: int = 2
    ) -> None:
        self._engine = engine
        self._hasher = hasher or PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
        self._dummy = self._hasher.hash("pli-dummy-password-for-timing")
        self._slots = asyncio.Semaphore(max_parallel)

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        async with self._slots:
            return await asyncio.to_thread(func, *args)

    async def set_password(self, address: str, password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise WeakPassword(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
        hashed = await self._run(self._hasher.hash, password)
        now = dt.datetime.now(dt.UTC)
        async with self._engine.begin() as conn:
            found = await conn.execute(
                select(account.c.address).where(account.c.address == address)
            )
            if found.first() is None:
                await conn.execute(
                    account.insert().values(address=address, password_hash=hashed, updated_at=now)
                )
            else:
                await conn.execute(
                    account.update()
                    .where(account.c.address == address)
                    .values(password_hash=hashed, updated_at=now)
                )

    async def verify(self, address: str, password: str) -> bool:
        async with self._engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(account.c.password_hash).where(account.c.address == address)
                )
            ).scalar_one_or_none()
        target = stored if stored is not None else self._dummy

        def _check() -> bool:
            try:
                return self._hasher.verify(target, password)
            except (VerificationError, InvalidHashError):
                return False

        ok = await self._run(_check)
        return ok and stored is not None
