"""``pli mdn list``: the disposition notifications received, by original Message-ID."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from gateway.cli.common import open_database

__all__ = ["add_parser", "command"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    m = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = m.add_parser("list", help="acknowledgements received, by original Message-ID")
    common(p)
    p.add_argument("--message-id", help="only those answering this Message-ID")
    p.add_argument("--format", choices=["table", "json"], default="table")


async def command(args: argparse.Namespace) -> int:
    from gateway.core import records

    _, engine = await open_database(args)
    try:
        wanted = None
        if args.message_id:
            wanted = args.message_id.strip()
            if not wanted.startswith("<"):
                wanted = f"<{wanted}>"
        for r in await records.acks(engine, wanted):
            if args.format == "json":
                print(
                    json.dumps(
                        {
                            "original_message_id": r.original_message_id,
                            "final_recipient": r.final_recipient,
                            "disposition": r.disposition,
                            "reporter": r.reporter,
                            "received_at": r.received_at.isoformat(),
                        }
                    )
                )
            else:
                print(
                    f"{r.received_at:%Y-%m-%d %H:%M:%S}  {r.disposition:16} "
                    f"{r.final_recipient:40} {r.original_message_id}"
                )
        return 0
    finally:
        await engine.dispose()
