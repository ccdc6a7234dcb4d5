"""Alembic revisions for every package's tables, and the call that applies them.

Each package owns its tables (its own SQLAlchemy ``MetaData``); this package is
the one place that combines them, so it sits above the packages whose tables
it names. ``pli init`` and ``pli serve`` migrate to the head at start-up.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["all_metadata", "migrate"]

_HERE = Path(__file__).parent


def all_metadata() -> list[MetaData]:
    """Each package's own MetaData, in dependency order (Alembic's target)."""
    from directory.tables import metadata as directory_md
    from gateway.core.tables import metadata as core_md
    from gateway.mailstore.tables import metadata as mailstore_md
    from gateway.outbound.tables import metadata as outbound_md
    from vault.tables import metadata as vault_md

    return [directory_md, vault_md, mailstore_md, outbound_md, core_md]


def _upgrade(conn: Connection, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` inside one connection."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)
