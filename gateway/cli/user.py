"""``pli user passwd``: set a mailbox user's password (argon2id), read from stdin or a
prompt, never from the command line (which other users can see in the process list)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from gateway.base.errors import InvalidInput, NotFound
from gateway.cli.common import open_database

__all__ = ["add_parser", "command"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    u = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = u.add_parser("passwd", help="set a user's password")
    common(p)
    p.add_argument("address")
    p.add_argument("--stdin", action="store_true", help="read the password from stdin")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise InvalidInput("the two passwords differ")
    return first


async def command(args: argparse.Namespace) -> int:
    from contextlib import AsyncExitStack

    from directory.base import normalize_address
    from gateway.app.backends import open_directory
    from gateway.mailstore.accounts import Accounts

    address = normalize_address(args.address)
    settings, engine = await open_database(args)
    try:
        async with AsyncExitStack() as stack:
            entry = await open_directory(settings, engine, stack).resolve(address)
        if entry is None:
            raise NotFound(f"{address} is not in the directory; import it first")
        await Accounts(engine).set_password(address, _read_password(args.stdin))
        print(f"password set for {address}")
        return 0
    finally:
        await engine.dispose()
