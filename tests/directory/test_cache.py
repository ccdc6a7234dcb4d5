"""The read-through cache over the real SQL directory: TTL, negatives, LRU, invalidation."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import Directory, DirectoryUnavailable, Entry
from directory.cache import CachedDirectory
from directory.sql import SqlDirectory
from directory.sql_import import import_extraction
from tests.support.clock import FakeClock

FIX = Path(__file__).parent.parent / "fixtures" / "directory"
SOPHIE = "sophie.bernard@ch-arras.mssante.fr"
ORG = "secretariat.geriatrie@ch-arras.mssante.fr"
NOBODY = "nobody@ch-arras.mssante.fr"


class Counting:
    """The real SQL directory, counting the calls that reach it (and able to fail)."""

    def __init__(self, inner: SqlDirectory) -> None:
        self.inner, self.calls, self.fail = inner, Counter[str](), False

    async def _go(self, name: str, *args: object) -> object:
        self.calls[name] += 1
        await asyncio.sleep(0.01)  # let concurrent callers pile up
        if self.fail:
            raise DirectoryUnavailable("down for the test")
        return await getattr(self.inner, name)(*args)

    async def resolve(self, address: str) -> Entry | None:
        return await self._go("resolve", address)  # type: ignore[return-value]

    async def is_trusted_domain(self, domain: str) -> bool:
        return await self._go("is_trusted_domain", domain)  # type: ignore[return-value]

    async def search(self, text: str, limit: int = 50) -> list[Entry]:
        return await self._go("search", text, limit)  # type: ignore[return-value]

    async def certificates(self, address: str) -> tuple[bytes, ...]:
        return await self._go("certificates", address)  # type: ignore[return-value]

    async def delegates(self, mailbox: str) -> frozenset[str]:
        return await self._go("delegates", mailbox)  # type: ignore[return-value]

    async def delegated_mailboxes(self, user: str) -> frozenset[str]:
        return await self._go("delegated_mailboxes", user)  # type: ignore[return-value]


@pytest.fixture
async def sql(engine: AsyncEngine) -> SqlDirectory:
    await import_extraction(engine, FIX / "extraction-sample.txt")
    return SqlDirectory(engine)


async def test_hits_ttl_and_negative_ttl(sql: SqlDirectory) -> None:
    backend, clock = Counting(sql), FakeClock(1000.0)
    cache = CachedDirectory(backend, ttl=300, negative_ttl=10, clock=clock)
    assert isinstance(cache, Directory)
    first = await cache.resolve(SOPHIE)
    assert first is not None and first == await sql.resolve(SOPHIE)
    for _ in range(5):
        assert await cache.resolve(SOPHIE.upper()) == first  # same key once normalised
    assert await cache.resolve(NOBODY) is None and await cache.resolve(NOBODY) is None
    assert backend.calls["resolve"] == 2 and cache.stats.hits == 6
    clock.now += 11  # the negative answer expired, the positive one not
    await cache.resolve(NOBODY)
    await cache.resolve(SOPHIE)
    assert backend.calls["resolve"] == 3
    clock.now += 300
    await cache.resolve(SOPHIE)
    assert backend.calls["resolve"] == 4
    assert await cache.resolve("not an address") is None and backend.calls["resolve"] == 4
    await cache.search("bernard")
    await cache.search("bernard")
    assert backend.calls["search"] == 2  # free-text search is never cached


async def test_concurrent_misses_share_one_call_and_failures_are_not_cached(
    sql: SqlDirectory,
) -> None:
    backend = Counting(sql)
    cache = CachedDirectory(backend)
    results = await asyncio.gather(*(cache.resolve(SOPHIE) for _ in range(20)))
    assert backend.calls["resolve"] == 1 and all(r == results[0] for r in results)
    backend.fail = True
    for _ in range(2):
        with pytest.raises(DirectoryUnavailable):
            await cache.delegates(ORG)
    assert backend.calls["delegates"] == 2  # asked again: a failure is never remembered
    assert await cache.resolve(SOPHIE) == results[0]  # what was cached is still served
    backend.fail = False
    assert await cache.delegates(ORG) == frozenset()


async def test_lru_bound(sql: SqlDirectory) -> None:
    backend = Counting(sql)
    cache = CachedDirectory(backend, max_entries=3)
    addresses = [SOPHIE, ORG, NOBODY, "a@b.fr"]
    for a in addresses:
        await cache.resolve(a)
    assert len(cache) == 3
    await cache.resolve(ORG)  # still there
    assert backend.calls["resolve"] == 4
    await cache.resolve(SOPHIE)  # the oldest was dropped
    assert backend.calls["resolve"] == 5


async def test_changes_by_another_process_are_seen_through_the_generation(
    sql: SqlDirectory, engine: AsyncEngine
) -> None:
    clock = FakeClock(1000.0)
    cache = CachedDirectory(sql, generation=sql.generation, check_interval=1.0, clock=clock)
    assert await cache.delegates(ORG) == frozenset()
    other = SqlDirectory(engine)  # e.g. `pli directory delegate` in another process
    assert await other.set_delegation(ORG, SOPHIE)
    assert await cache.delegates(ORG) == frozenset()  # within check_interval: cached
    clock.now += 1.5
    assert await cache.delegates(ORG) == {SOPHIE}
    assert await cache.delegated_mailboxes(SOPHIE) == {ORG}
    # An import (here the same file: nothing changes but the generation) also invalidates.
    before = cache.stats.invalidations
    await import_extraction(engine, FIX / "extraction-sample.txt")
    clock.now += 1.5
    await cache.resolve(SOPHIE)
    assert cache.stats.invalidations == before + 1


async def test_in_process_invalidate_drops_answers_being_fetched(sql: SqlDirectory) -> None:
    backend = Counting(sql)
    cache = CachedDirectory(backend)
    pending = asyncio.ensure_future(cache.resolve(SOPHIE))
    await asyncio.sleep(0)
    cache.invalidate()
    await pending
    await cache.resolve(SOPHIE)
    assert backend.calls["resolve"] == 2  # the answer fetched across invalidate() was not kept
