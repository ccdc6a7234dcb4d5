"""Suite-wide fixtures: a fresh database per test, on SQLite and on a real PostgreSQL.

``db_url`` is parametrized over both kinds; the PostgreSQL cluster is started
once per session (initdb + pg_ctl as the ``postgres`` user, loopback, trust
auth, see ``tests/support/postgres.py``) and each test gets its own database.
Missing PostgreSQL binaries fail the tests with the install hint, never skip.
"""

from __future__ import annotations

import secrets
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


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each kind (schema not created)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'pli.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    name = "t_" + secrets.token_hex(6)
    cluster.create_database(name)
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
    await migrate(eng)
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
