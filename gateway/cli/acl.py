"""``pli acl list|set|remove``: what delegated users may do in a shared mailbox (RFC 4314).

The operator's side of IMAP ACLs: nobody holds the administer right ("a")
until it is given here, so this is also how a secretariat's lead gets to
manage the mailbox from a mail client.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from contextlib import AsyncExitStack

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.config import Settings
from gateway.cli.common import with_database
from gateway.mailstore import acl

__all__ = ["add_parser", "command", "run"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    a = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = a.add_parser("list", help="each delegate and its rights")
    common(p)
    p.add_argument("owner", metavar="MAILBOX")
    p = a.add_parser("set", help="give a delegate exactly these rights, e.g. lrswipkxtea")
    common(p)
    p.add_argument("owner", metavar="MAILBOX")
    p.add_argument("identifier", metavar="USER")
    p.add_argument("rights")
    p = a.add_parser("remove", help="back to the delegation's default rights")
    common(p)
    p.add_argument("owner", metavar="MAILBOX")
    p.add_argument("identifier", metavar="USER")


async def run(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from gateway.app.backends import open_directory

    async with AsyncExitStack() as stack:
        directory = open_directory(settings, engine, stack)
        if args.action == "list":
            entries = await acl.list_acl(engine, directory, args.owner)
            for e in entries:
                print(f"{e.identifier:60} {e.rights:12} {'' if e.explicit else '(default)'}")
            if not entries:
                print(f"{args.owner} has no delegates")
            return 0
        await acl.set_acl(
            engine,
            directory,
            args.owner,
            args.identifier,
            args.rights if args.action == "set" else None,
            actor=f"cli:{getpass.getuser()}",
        )
    print(
        f"{args.identifier} on {args.owner}: "
        f"{acl.canonical(args.rights) if args.action == 'set' else 'default rights'}"
    )
    return 0


command = with_database(run)
