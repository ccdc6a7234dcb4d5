"""A read-through cache in front of any directory backend: TTL, negative answers, LRU.

Every SMTP transaction asks the directory several times (sender, each
recipient, trust space, delegations); the answers change a few times a day.
The cache keeps them for ``ttl`` seconds (``negative_ttl`` for "no such
mailbox", so that a new mailbox is reachable soon after its import), bounded
to ``max_entries`` in LRU order. Concurrent misses on one key share one
backend call. Failures are never cached: a DirectoryUnavailable reaches the
caller (SMTP 451) and the next call asks again.

Invalidation: the process that changes the directory calls :meth:`invalidate`;
other processes and instances notice through ``generation`` (the SQL change
counter every import and delegation bumps), read at most every
``check_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from directory import events
from directory.base import Directory, DirectoryError, Entry, InvalidAddress, normalize_address

__all__ = ["CacheStats", "CachedDirectory"]

log = structlog.get_logger("pli.directory.cache")

T = TypeVar("T")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    invalidations: int = 0


class CachedDirectory:
    """:class:`~directory.base.Directory` that remembers its backend's answers."""

    def __init__(
        self,
        backend: Directory,
        *,
        ttl: float = 300.0,
        negative_ttl: float = 60.0,
        max_entries: int = 20_000,
        generation: Callable[[], Awaitable[int]] | None = None,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.backend = backend
        self.stats = CacheStats()
        self._ttl, self._negative_ttl = ttl, negative_ttl
        self._max = max_entries
        self._generation_source = generation
        self._check_interval = check_interval
        self._clock = clock
        self._data: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._generation: int | None = None
        self._epoch = 0  # bumped by invalidate: answers fetched before it are not kept
        self._checked_at = float("-inf")
        self._checking: asyncio.Future[None] | None = None

    def invalidate(self) -> None:
        """Forget everything (this process changed the directory)."""
        self._data.clear()
        self._epoch += 1
        self.stats.invalidations += 1

    def __len__(self) -> int:
        return len(self._data)

    async def _check_generation(self) -> None:
        if self._generation_source is None:
            return
        now = self._clock()
        if now - self._checked_at < self._check_interval:
            return
        if self._checking is not None:  # another caller is already asking
            await asyncio.shield(self._checking)
            return
        self._checking = asyncio.get_running_loop().create_future()
        current: int | None
        try:
            current = await self._generation_source()
        except DirectoryError as exc:
            # Keep serving what is cached (bounded by the TTL); the backend call of a
            # miss will report the failure itself.
            log.warning(events.DIRECTORY_GENERATION_UNAVAILABLE, error=type(exc).__name__)
            current = self._generation
        finally:
            self._checked_at = self._clock()
            done, self._checking = self._checking, None
            done.set_result(None)
        if current is not None and current != self._generation:
            if self._generation is not None:
                self.invalidate()
            self._generation = current

    async def _get(
        self, kind: str, key: str, fetch: Callable[[], Awaitable[T]], negative: Callable[[T], bool]
    ) -> T:
        await self._check_generation()
        slot = (kind, key)
        hit = self._data.get(slot)
        if hit is not None:
            if hit[0] > self._clock():
                self._data.move_to_end(slot)
                self.stats.hits += 1
                cached: T = hit[1]
                return cached
            del self._data[slot]
        waiting = self._inflight.get(slot)
        if waiting is not None:
            self.stats.hits += 1
            shared: T = await asyncio.shield(waiting)
            return shared
        self.stats.misses += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[slot] = future
        epoch = self._epoch
        try:
            value: T = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._inflight[slot]
        future.set_result(value)
        if epoch == self._epoch:  # not invalidated while we were asking
            ttl = self._negative_ttl if negative(value) else self._ttl
            self._data[slot] = (self._clock() + ttl, value)
            if len(self._data) > self._max:
                self._data.popitem(last=False)
        return value

    async def resolve(self, address: str) -> Entry | None:
        try:
            key = normalize_address(address)
        except InvalidAddress:
            return None
        return await self._get(
            "resolve", key, lambda: self.backend.resolve(key), lambda v: v is None
        )

    async def is_trusted_domain(self, domain: str) -> bool:
        key = domain.strip().lower().rstrip(".")
        return await self._get(
            "trusted", key, lambda: self.backend.is_trusted_domain(key), lambda v: not v
        )

    async def search(self, text: str, limit: int = 50) -> list[Entry]:
        return await self.backend.search(text, limit)  # free text: too varied to cache

    async def certificates(self, address: str) -> tuple[bytes, ...]:
        key = address.strip().lower()
        return await self._get(
            "certs", key, lambda: self.backend.certificates(key), lambda v: not v
        )

    async def delegates(self, mailbox: str) -> frozenset[str]:
        key = mailbox.strip().lower()
        return await self._get(
            "delegates", key, lambda: self.backend.delegates(key), lambda v: not v
        )

    async def delegated_mailboxes(self, user: str) -> frozenset[str]:
        key = user.strip().lower()
        return await self._get(
            "delegated", key, lambda: self.backend.delegated_mailboxes(key), lambda v: not v
        )
