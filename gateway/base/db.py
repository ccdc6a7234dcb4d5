"""Database engines for every package (SQLite made durable once here); stored times as UTC.

SQLite is tuned here once (WAL, ``synchronous=FULL`` because a 250 is a
promise that survives power loss, a busy timeout so writers queue instead of
failing); PostgreSQL needs nothing special. The schema is not this module's:
migrations live in :mod:`gateway.migrations`, which knows every package's
tables (and, being above them all, cannot live in ``gateway.base``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, overload

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["create_engine", "utc"]


def create_engine(url: str, *, one_trip: bool = True, **kwargs: Any) -> AsyncEngine:
    """An async engine; on SQLite, each connection gets WAL and durable commits.

    ``one_trip`` (``[tuning] sqlite_one_trip``) serves ``sqlite+aiosqlite`` URLs with
    pli's variant of the driver (gateway/base/tuning/sqlite.py); off, SQLAlchemy's own.
    """
    if one_trip and url.startswith("sqlite+aiosqlite:"):
        from gateway.base.tuning.sqlite import DRIVER  # imported only when used

        url = DRIVER + url[len("sqlite+aiosqlite") :]  # same driver, fewer thread trips
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
