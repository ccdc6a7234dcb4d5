"""``pli queue list|retry|purge``: the outbound queue as an operator sees it."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.errors import UsageError
from gateway.cli.common import open_database
from gateway.outbound import store
from vault import audit

__all__ = ["add_parser", "command", "run"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    q = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = q.add_parser("list", help="list queue entries")
    common(p)
    p.add_argument("--state", choices=[store.QUEUED, store.DELIVERED, store.FAILED])
    p.add_argument("--format", choices=["table", "json"], default="table")
    p = q.add_parser("retry", help="try queued entries now")
    common(p)
    p.add_argument("ids", nargs="*", type=int, metavar="ID")
    p.add_argument("--all", action="store_true", help="every queued entry")
    p = q.add_parser("purge", help="delete finished entries (or cancel queued ones)")
    common(p)
    p.add_argument("ids", nargs="*", type=int, metavar="ID")
    p.add_argument("--delivered", action="store_true", help="every delivered entry")
    p.add_argument("--failed", action="store_true", help="every failed entry")


async def run(args: argparse.Namespace, engine: AsyncEngine) -> int:
    now = dt.datetime.now(dt.UTC)
    if args.action == "list":
        entries = await store.list_entries(engine, args.state)
        for e in entries:
            if args.format == "json":
                print(
                    json.dumps(
                        {
                            "id": e.id,
                            "msg_ref": e.msg_ref,
                            "sender": e.sender,
                            "recipient": e.recipient,
                            "state": e.state,
                            "attempts": e.attempts,
                            "next_attempt": e.next_attempt.isoformat(),
                            "created_at": e.created_at.isoformat(),
                            "last_reply": e.last_reply,
                        }
                    )
                )
            else:
                print(
                    f"{e.id:>6} {e.state:9} {e.attempts:>3} {e.next_attempt:%Y-%m-%d %H:%M:%S} "
                    f"{e.msg_ref} {e.sender} -> {e.recipient}  {e.last_reply[:60]}"
                )
        return 0
    if args.action == "retry":
        if not args.ids and not args.all:
            raise UsageError("name entries (ID ...) or use --all")
        count = await store.retry(engine, None if args.all else args.ids, now)
        print(f"{count} entries due now")
        return 0
    states = [s for s, on in ((store.DELIVERED, args.delivered), (store.FAILED, args.failed)) if on]
    if args.ids:
        # Named entries may be cancelled while queued: the operator takes responsibility.
        states = [store.QUEUED, store.DELIVERED, store.FAILED]
    if not states:
        raise UsageError("name entries (ID ...) or use --delivered / --failed")
    count = await store.purge(engine, states=states, entry_ids=args.ids or None)
    async with engine.begin() as conn:
        await audit.append(
            conn,
            audit.AuditEvent(
                action="queue.purge",
                actor=f"cli:{getpass.getuser()}",
                detail={
                    "entries": count,
                    "ids": ",".join(map(str, args.ids))[:200],
                    "states": ",".join(states),
                },
            ),
        )
    print(f"{count} entries purged")
    return 0


async def command(args: argparse.Namespace) -> int:
    _, engine = await open_database(args)
    try:
        return await run(args, engine)
    finally:
        await engine.dispose()
