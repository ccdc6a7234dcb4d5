"""The one-trip SQLite driver behaves like SQLAlchemy's aiosqlite adapter, in fewer trips.

Every behaviour a caller relies on is checked against a real SQLite file, on
the one-trip driver and on SQLAlchemy's own (``[tuning] sqlite_one_trip =
false``): rows, rowcount, RETURNING, autoincrement keys, executemany, errors
mapped to SQLAlchemy's exceptions, rollback of a failed transaction,
server-side streaming; then the number of trips to aiosqlite's thread, which is
the point, and that the stock path does not even import the fenced module.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiosqlite.core
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.db import create_engine
from gateway.base.tuning.sqlite import DRIVER

_md = sa.MetaData()
_t = sa.Table(
    "t",
    _md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(20), unique=True, nullable=False),
    sa.Column("n", sa.Integer, nullable=False, server_default="0"),
)


@pytest.fixture(params=[True, False], ids=["one-trip", "stock"])
async def eng(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", one_trip=request.param)
    assert engine.url.drivername == (DRIVER if request.param else "sqlite+aiosqlite")
    async with engine.begin() as conn:
        await conn.run_sync(_md.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []
    real = aiosqlite.core.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: object, *a: object, **k: object) -> object:
        seen.append(getattr(fn, "__name__", "?"))
        return await real(self, fn, *a, **k)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    yield seen


async def test_rows_keys_rowcount_and_returning(eng: AsyncEngine) -> None:
    async with eng.begin() as conn:
        first = await conn.execute(_t.insert().values(name="a"))
        assert first.inserted_primary_key == (1,)
        await conn.execute(_t.insert(), [{"name": "b"}, {"name": "c"}, {"name": "d"}])
        back = await conn.execute(_t.insert().values(name="e").returning(_t.c.id, _t.c.n))
        assert back.one() == (5, 0)
        upd = await conn.execute(_t.update().where(_t.c.id > 2).values(n=7))
        assert upd.rowcount == 3
    async with eng.connect() as conn:
        rows = (await conn.execute(sa.select(_t.c.name, _t.c.n).order_by(_t.c.id))).all()
        assert rows == [("a", 0), ("b", 0), ("c", 7), ("d", 7), ("e", 7)]
        assert (await conn.execute(sa.select(_t).where(_t.c.id == 99))).first() is None
        assert await conn.scalar(sa.select(sa.func.count()).select_from(_t)) == 5


async def test_errors_are_sqlalchemy_errors_and_failed_transactions_roll_back(
    eng: AsyncEngine,
) -> None:
    async with eng.begin() as conn:
        await conn.execute(_t.insert().values(name="a"))
    with pytest.raises(sa.exc.IntegrityError):
        async with eng.begin() as conn:
            await conn.execute(_t.insert().values(name="b"))
            await conn.execute(_t.insert().values(name="a"))  # unique violation
    with pytest.raises(sa.exc.OperationalError, match="no such table"):
        async with eng.connect() as conn:
            await conn.execute(sa.text("SELECT * FROM missing"))
    async with eng.connect() as conn:
        names = (await conn.execute(sa.select(_t.c.name))).scalars().all()
    assert names == ["a"]  # "b" went with its transaction


async def test_an_abandoned_transaction_is_rolled_back_when_the_connection_returns(
    eng: AsyncEngine,
) -> None:
    async with eng.connect() as conn:
        await conn.execute(_t.insert().values(name="x"))  # never committed
    async with eng.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(_t)) == 0


async def test_server_side_streaming_still_works(eng: AsyncEngine) -> None:
    async with eng.begin() as conn:
        await conn.execute(_t.insert(), [{"name": f"n{i}"} for i in range(250)])
    async with eng.connect() as conn:
        result = await conn.stream(sa.select(_t.c.id).order_by(_t.c.id))
        ids = [row.id async for row in result]
    assert ids == list(range(1, 251))


async def test_a_read_is_one_trip_and_a_durable_insert_two(
    eng: AsyncEngine, trips: list[str]
) -> None:
    one_trip = eng.url.drivername == DRIVER
    async with eng.connect() as conn:  # warm the pool: connecting has its own trips
        await conn.execute(sa.select(_t))
    trips.clear()
    async with eng.connect() as conn:
        await conn.execute(sa.select(_t).where(_t.c.id == 1))
    # The stock adapter: cursor, execute, fetchall, close, rollback.
    assert len(trips) == 1 if one_trip else len(trips) >= 4
    trips.clear()
    async with eng.begin() as conn:
        await conn.execute(_t.insert().values(name="a"))
    # The stock adapter: cursor, execute, close, commit, rollback.
    assert trips == ["_run", "commit"] if one_trip else len(trips) >= 4 and "commit" in trips


def test_the_stock_path_does_not_import_the_fenced_dialect(tmp_path: Path) -> None:
    """Switched off, a broken fence (an upgrade that moved its internals) cannot matter."""
    code = (
        "import sys\n"
        "from gateway.base.db import create_engine\n"
        f"e = create_engine('sqlite+aiosqlite:///{tmp_path / 'd.db'}', one_trip=False)\n"
        "assert e.url.drivername == 'sqlite+aiosqlite', e.url\n"
        "assert 'gateway.base.tuning.sqlite' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
