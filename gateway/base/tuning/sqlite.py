"""SQLAlchemy's aiosqlite dialect with one thread trip per statement instead of four.

aiosqlite runs each SQLite connection in its own thread, and every call made
through it is a trip there and back (a queue put, a thread wake-up, a
``call_soon_threadsafe`` to wake the loop). SQLAlchemy's adapter makes four of
them per statement (cursor, execute, fetchall, close) and a fifth for the
rollback that resets every connection going back to the pool, even after a
commit. Those trips, not SQLite, were most of the time of a one-row read or a
durable insert (figures in docs/benchmarks.md, "Tuning notes"): for a mail
gateway that commits per message, that is most of the time spent.

Here a cursor runs cursor + execute + fetchall + close as one function inside
aiosqlite's thread (one trip), and the reset rollback is skipped when SQLite
says no transaction is open. Results are still fully buffered, as SQLAlchemy's
own adapter does for client-side cursors; server-side cursors (``stream()``)
keep the stock adapter. Selected by ``gateway.base.db.create_engine`` for any
``sqlite+aiosqlite`` URL, so configuration is unchanged.

Relies on SQLAlchemy's aiosqlite adapter classes (their ``_connection``,
``_execute_mutex``, ``_handle_exception``, ``_cursor_cls``, ``await_``) and on
aiosqlite's ``Connection._execute``, ``_conn`` and ``_connection``: tested with
SQLAlchemy 2.1.9 and aiosqlite 0.22.1, bounded in pyproject.toml to SQLAlchemy
2.1.x and aiosqlite below 0.23 (SQLAlchemy 2.0 names ``await_`` ``await_only``).
Switch: ``[tuning] sqlite_one_trip`` (off: SQLAlchemy's own dialect; this
module is then never imported).
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

__all__ = ["DRIVER", "OneTripDialect"]

DRIVER = "sqlite+pliaiosqlite"

_Outcome = tuple[Any, list[Any], int, int | None]


def _run(conn: sqlite3.Connection, sql: str, params: Any, many: bool) -> _Outcome:
    """Inside aiosqlite's thread: the whole statement, rows included."""
    cur = conn.cursor()
    try:
        if many:
            cur.executemany(sql, params)
        elif params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        return cur.description, rows, cur.rowcount, cur.lastrowid
    finally:
        cur.close()


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement, rows and metadata arrive in one trip."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # No aiosqlite cursor is opened (the stock adapter spends a trip on it).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None  # nothing is left open in the worker thread

    def close(self) -> None:
        self._rows.clear()

    def _one_trip(self, sql: str, params: Any, many: bool) -> None:
        async def go() -> _Outcome:
            async with self._adapt_connection._execute_mutex:
                outcome: _Outcome = await self._connection._execute(
                    _run, self._connection._conn, sql, params, many
                )
                return outcome

        try:
            self._description, rows, self._rowcount, self._lastrowid = await_(go())
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._rows = collections.deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._one_trip(operation, parameters, False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> None:
        self._one_trip(operation, seq_of_parameters, True)


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    _cursor_cls = _OneTripCursor

    def rollback(self) -> None:
        # The pool resets every returned connection with a rollback; after a commit
        # or a read there is nothing to undo, and asking SQLite costs no trip.
        conn = self._connection._connection
        if conn is not None and not conn.in_transaction:
            return
        super().rollback()


class _OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _OneTripConnection:
        stock = super().connect(*arg, **kw)
        return _OneTripConnection(self, stock._connection)


class OneTripDialect(SQLiteDialect_aiosqlite):
    driver = "pliaiosqlite"
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> _OneTripDbapi:
        return _OneTripDbapi(__import__("aiosqlite"), __import__("sqlite3"))


registry.register("sqlite.pliaiosqlite", __name__, "OneTripDialect")
