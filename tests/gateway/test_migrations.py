"""The Alembic revisions build exactly the schema the packages' MetaData describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.migrations import all_metadata


def _diff(sync_conn: Any) -> list[Any]:
    combined = MetaData()
    for md in all_metadata():
        for table in md.tables.values():
            table.to_metadata(combined)
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return [
        d
        for d in compare_metadata(ctx, combined)
        if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")
    ]


async def test_migrations_match_metadata(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []
