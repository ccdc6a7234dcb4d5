"""``pli mailbox inactive|close``: closing mailboxes unused for a year, explicitly and on record.

The operator lists, notifies, then closes: nothing is closed by a timer. A
closure is one audited transaction; the archive of the mailbox's messages stays
in the vault until its retention date.
"""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.config import Settings
from gateway.cli.common import with_database
from gateway.mailstore import closure

__all__ = ["add_parser", "command", "run"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    m = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = m.add_parser("inactive", help="accounts with no successful login for DAYS days")
    common(p)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p = m.add_parser("close", help="remove an account, its mailboxes and messages (audited)")
    common(p)
    p.add_argument("address")
    p.add_argument("--reason", required=True, help="e.g. 'unused-1y', a ticket reference")


async def run(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    if args.action == "inactive":
        found = await closure.inactive_mailboxes(engine, args.days)
        if args.format == "json":
            print(
                json.dumps(
                    [
                        {
                            "address": f.address,
                            "last_login": f.last_login.isoformat() if f.last_login else None,
                            "account_changed": f.account_changed.isoformat(),
                        }
                        for f in found
                    ],
                    indent=1,
                )
            )
            return 0
        for f in found:
            last = f"{f.last_login:%Y-%m-%d}" if f.last_login else "never"
            print(
                f"{f.address:60} last login {last:10}  account since {f.account_changed:%Y-%m-%d}"
            )
        print(f"{len(found)} mailboxes without a login for {args.days} days")
        return 0
    closed = await closure.close_mailbox(
        engine, args.address, actor=f"cli:{getpass.getuser()}", reason=args.reason
    )
    # A closed mailbox's API tokens must not keep sending or reading in its name.
    from gateway.mailstore.tokens import TokenService

    revoked = await TokenService(engine).revoke_mailbox(closed.address)
    print(
        f"closed {closed.address}: {closed.mailboxes} mailboxes, {closed.messages} messages "
        f"removed (bodies stay in the vault until their retention date), {revoked} API "
        "tokens revoked"
    )
    return 0


command = with_database(run)
