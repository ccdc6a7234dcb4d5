"""What every ``pli`` command group shares: the common options, the settings, and a
migrated database opened for one command and disposed of after.

Kept light on purpose: ``pli --help`` imports this and the registry in
``gateway/cli/main.py``, never a command group's own module.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.base.config import Settings

__all__ = ["Command", "Runner", "common_options", "open_database", "settings_of", "with_database"]

# What a command group exposes as ``command``: the parsed arguments in, an exit code out.
Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
Runner = Callable[[argparse.Namespace, "Settings", "AsyncEngine"], Coroutine[Any, Any, int]]


def common_options(p: argparse.ArgumentParser) -> None:
    # SUPPRESS lets the options stand before or after the sub-command.
    p.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="data directory (env PLI_DATA_DIR, default ./var)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="configuration file (env PLI_CONFIG, default DATA_DIR/pli.toml)",
    )
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print tracebacks on errors"
    )


def settings_of(args: argparse.Namespace) -> Settings:
    from gateway.base.config import load_settings

    return load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))


async def open_database(args: argparse.Namespace) -> tuple[Settings, AsyncEngine]:
    """The settings and an engine on the migrated database; the caller disposes of it."""
    from gateway.base.db import create_engine
    from gateway.migrations import migrate

    settings = settings_of(args)
    engine = create_engine(settings.database_url(), one_trip=settings.tuning.sqlite_one_trip)
    await migrate(engine)
    return settings, engine


def with_database(run: Runner) -> Command:
    """A command that needs the settings and a migrated database, disposed of after."""

    async def command(args: argparse.Namespace) -> int:
        settings, engine = await open_database(args)
        try:
            return await run(args, settings, engine)
        finally:
            await engine.dispose()

    return command
