"""The outbound queue's rows on SQLite and PostgreSQL: claims never overlap, leases expire."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.db import create_engine
from gateway.outbound import store
from gateway.outbound.dsn import DsnRecipient, build_dsn

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


async def _fill(engine: AsyncEngine, n: int) -> None:
    async with engine.begin() as conn:
        await store.enqueue(
            conn,
            msg_ref="ref1",
            blob="b" * 32,
            sender="a@x.fr",
            recipients=[f"r{i}@y.fr" for i in range(n)],
            now=NOW,
            max_age=3600,
        )


async def test_concurrent_claims_are_disjoint_and_leases_expire(
    engine: AsyncEngine, db_url: str
) -> None:
    await _fill(engine, 50)
    other = create_engine(db_url)  # a second instance on the same database
    try:
        first, second = await asyncio.gather(
            store.claim(engine, "w1", now=NOW, limit=30, lease=60),
            store.claim(other, "w2", now=NOW, limit=30, lease=60),
        )
    finally:
        await other.dispose()
    ids1, ids2 = {e.id for e in first}, {e.id for e in second}
    assert not ids1 & ids2  # never the same entry twice
    # On SQLite both may have picked the same candidates and the loser got fewer (or
    # none) this round; the rest is claimed by the next round, still exactly once.
    rest = {e.id for e in await store.claim(engine, "w3", now=NOW, limit=100, lease=60)}
    assert not rest & (ids1 | ids2) and len(ids1 | ids2 | rest) == 50
    assert await store.claim(engine, "w3", now=NOW, limit=100, lease=60) == []
    # w1 crashed: after its lease, its entries are claimed again (at-least-once).
    later = NOW + dt.timedelta(seconds=61)
    again = await store.claim(engine, "w3", now=later, limit=100, lease=60)
    assert {e.id for e in again} == ids1 | ids2 | rest
    done = [e.id for e in again[:10]]
    await store.record(engine, done, state=store.DELIVERED, reply="250 ok", now=later)
    retry_at = later + dt.timedelta(seconds=600)
    await store.record(
        engine,
        [e.id for e in again[10:]],
        state=store.QUEUED,
        reply="451 later",
        now=later,
        next_attempt=retry_at,
    )
    assert await store.claim(engine, "w4", now=later, limit=100, lease=60) == []
    assert await store.retry(engine, None, later) == 40
    assert len(await store.claim(engine, "w4", now=later, limit=100, lease=60)) == 40
    assert await store.depth(engine) == 40
    assert await store.purge(engine, states=[store.DELIVERED]) == 10
    assert [e.attempts for e in await store.list_entries(engine)] == [1] * 40


def test_dsn_is_a_well_formed_report_without_the_body() -> None:
    original = (
        b"From: a@x.fr\r\nTo: r@y.fr\r\nSubject: compte rendu\r\n"
        b"Message-ID: <m1@x.fr>\r\n\r\nCONFIDENTIAL BODY\r\n"
    )
    raw = build_dsn(
        reporting_mta="mx.x.fr",
        sender="a@x.fr",
        msg_ref="ref1",
        arrival=NOW,
        recipients=[
            DsnRecipient(
                "r@y.fr",
                "failed",
                "5.1.1",
                "550 5.1.1 Recipient\r\nnot in the directory",
                "mx.y.fr",
            )
        ],
        original=original,
        now=NOW,
    )
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    status = raw.decode()
    assert "Final-Recipient: rfc822; r@y.fr" in status and "Status: 5.1.1" in status
    assert "Diagnostic-Code: smtp; 550 5.1.1 Recipient not in the directory" in status
    assert "<m1@x.fr>" in status and "CONFIDENTIAL BODY" not in status
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only: it goes through ingest
