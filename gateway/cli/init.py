"""``pli init`` and ``pli serve``: make a data directory, and run the listeners on it.

``serve`` reads its settings before anything starts a thread, because
``pli serve`` tunes the allocator first (``gateway.base.tuning``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gateway.cli.common import settings_of

if TYPE_CHECKING:
    from gateway.base.config import Settings

__all__ = ["add_init_parser", "add_serve_parser", "init_command", "serve_command"]


def add_init_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    parser.add_argument("--demo", action="store_true", help="load the demo directory and accounts")
    parser.add_argument("--domain", action="append", default=[], help="a served mail domain")


def add_serve_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    """``pli serve`` takes only the common options."""


async def init_command(args: argparse.Namespace) -> int:
    from gateway.app.datadir import init_data_dir

    data_dir = getattr(args, "data_dir", None) or settings_of(args).data_dir
    settings, accounts = await init_data_dir(
        data_dir,
        demo=args.demo,
        domains=tuple(args.domain),
        config_file=getattr(args, "config", None),
    )
    print(f"data directory ready: {settings.data_dir.resolve()}")
    if accounts:
        _print_demo(settings, accounts)
    return 0


async def serve_command(args: argparse.Namespace) -> int:
    from gateway.app.datadir import read_demo_accounts
    from gateway.app.server import run_server
    from gateway.base.events import configure_logging

    settings = settings_of(args)  # no thread before run_server tunes the allocator
    configure_logging(settings.log.level)
    accounts = read_demo_accounts(settings.data_dir)
    if accounts and sys.stdout.isatty():
        _print_demo(settings, accounts)
    await run_server(settings)
    return 0


def _print_demo(settings: Settings, accounts: Sequence[Any]) -> None:
    print("\nDemo accounts (address / password), also in DATA_DIR/demo-accounts.txt:")
    for acc in accounts:
        print(f"  {acc.address:58} {acc.password}")
    print(
        f"\nMail client: IMAP {settings.imap.host}:{settings.imap.port} STARTTLS, "
        f"user = the address; incoming SMTP {settings.smtp.host}:{settings.smtp.mta_port} "
        "STARTTLS.\nThe TLS certificate is self-signed for development: accept it once.\n"
        f"Try: swaks --server {settings.smtp.host}:{settings.smtp.mta_port} -tls "
        "--from jean.petit@medecin.mssante.fr --to sophie.bernard@ch-arras.mssante.fr"
    )
