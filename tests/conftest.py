"""Suite-wide fixtures: a fresh database per test, on SQLite and on a real PostgreSQL.

``db_url`` is parametrized over both kinds; the PostgreSQL cluster is started
once per session (initdb + pg_ctl as the ``postgres`` user, loopback, trust
auth, see ``tests/support/postgres.py``) and each test gets its own database.
Missing PostgreSQL binaries fail the tests with the install hint, never skip.

Every migration runs once per session and kind, into a template: a test that
uses ``engine`` gets a copy of it (a file copy on SQLite, ``CREATE DATABASE ...
TEMPLATE`` on PostgreSQL) rather than running them again.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.db import create_engine
from gateway.migrations import migrate
from tests.support import softhsm as softhsm_support
from tests.support.datadir import DemoDataDirs
from tests.support.postgres import PostgresCluster
from tests.support.profiles import load_profile
from tests.support.slapd import Slapd
from tests.support.softhsm import SoftHsm

# ``make test`` (CI) draws the same hypothesis examples on every run, fewer of them, so a
# red CI is reproducible and never a lottery; ``make fuzz`` draws fresh random ones to hunt.
load_profile()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def demo_dirs(tmp_path_factory: pytest.TempPathFactory) -> DemoDataDirs:
    """``pli init --demo`` once per session (per domain set); ``copy`` for each test."""
    return DemoDataDirs(tmp_path_factory.mktemp("demo-templates"))


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A real OpenLDAP server for the whole session (each test uses its own subtree)."""
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.setup()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _migrate(url: str) -> None:
    eng = create_engine(url)
    try:
        await migrate(eng)
    finally:
        await eng.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file with every migration applied (copied by ``db_url``)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "pli.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    assert not path.with_name("pli.db-wal").exists()  # all of it is in the one file
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresCluster) -> str:
    """A PostgreSQL database with every migration applied (``db_url``'s TEMPLATE)."""
    name = "pli_template"
    postgres.create_database(name)
    asyncio.run(_migrate(postgres.url(name)))
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new database of each kind: migrated if the test uses ``engine``
    (a copy of the session's template), empty otherwise (schema not created)."""
    migrated = "engine" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "pli.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    name = "t_" + secrets.token_hex(6)
    cluster.create_database(
        name, request.getfixturevalue("postgres_template") if migrated else None
    )
    return cluster.url(name)


@pytest.fixture
async def db_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh, empty database of each kind (no schema), disposed after."""
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database of each kind, with every migration applied."""
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A SoftHSM token directory for the session (SOFTHSM2_CONF set for every process)."""
    if not softhsm_support.available():
        pytest.fail("softhsm2 is missing: make test installs it (deploy/dev/apt-deps.sh)")
    root = tmp_path_factory.mktemp("softhsm")
    conf = softhsm_support.configure(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        yield SoftHsm(root)
