"""Database engine creation and schema migration for every package's tables.

SQLite is tuned here once (WAL, ``synchronous=FULL`` because a 250 is a
promise that survives power loss, a busy timeout so writers queue instead of
failing); PostgreSQL needs nothing special. Migrations are Alembic revisions
under ``gateway/migrations``, applied by ``pli init`` and at start-up.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, overload

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.base.tuning.sqlite import DRIVER

__all__ = ["all_metadata", "create_engine", "migrate", "utc"]

_MIGRATIONS = Path(__file__).parent.parent / "migrations"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; on SQLite, each connection gets WAL and durable commits."""
    if url.startswith("sqlite+aiosqlite:"):
        url = DRIVER + url[len("sqlite+aiosqlite"):]  # same driver, fewer thread trips
    if url.startswith("sqlite"):
        # SQLite has one writer at a time, and its busy handler waits by sleeping in
        # growing steps (up to 100 ms). Message commits go through the group-commit
        # writer (gateway/core/commit.py); a small bounded pool serves the readers
        # (WAL lets them run beside it) and queues the rest in the pool, not in sleeps.
        kwargs.setdefault("pool_size", 4)
        kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("pool_timeout", 60)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def all_metadata() -> list[MetaData]:
    """Each package's own MetaData, in dependency order (Alembic's target)."""
    from directory.tables import metadata as directory_md
    from gateway.mailstore.tables import metadata as gateway_md
    from gateway.mailstore.token_tables import metadata as http_md
    from vault.tables import metadata as vault_md

    return [directory_md, vault_md, gateway_md, http_md]


def _upgrade(conn: Connection, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` inside one connection."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


@overload
def utc(value: dt.datetime) -> dt.datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: dt.datetime | None) -> dt.datetime | None:
    """A stored time as an aware UTC datetime: SQLite hands back naive ones, and pli
    stores nothing but UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)

