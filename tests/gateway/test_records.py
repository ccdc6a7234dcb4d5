"""The core's records and the vault's hold check answer for many objects at once.

``pli vault hold --mailbox`` asks for the evidence of every message a mailbox
holds: thousands of references, more than one SQL statement may bind on SQLite
(32,766) or PostgreSQL (asyncpg: 32,767) if they went into one IN list.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.core import records
from gateway.core.tables import message_evidence
from vault import retention

COUNT = 40_000  # over both drivers' bound-parameter limits


async def test_evidence_of_many_messages(engine: AsyncEngine) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "msg_ref": f"r{i}",
            "kind": "receipt",
            "part": None,
            "object_name": f"o{i}",
            "created_at": now,
        }
        for i in range(COUNT)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(message_evidence), rows)
    async with engine.connect() as conn:
        found = await records.evidence_objects(conn, [f"r{i}" for i in range(COUNT)])
        assert found == {f"o{i}" for i in range(COUNT)}
        assert await records.evidence_objects(conn, []) == set()


async def test_unknown_objects_among_many(engine: AsyncEngine) -> None:
    names = [f"{i:032x}" for i in range(COUNT)]
    async with engine.connect() as conn:
        assert await retention.unknown_objects(conn, names) == names
