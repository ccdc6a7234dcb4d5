"""``pli token create|list|revoke``: API tokens for hospital software and auditors.

``create`` prints the bearer token once (stdout, nothing else on that line)
and stores only its digest; ``list`` never shows a secret. Every change is an
audit entry naming the token id, never the token. Send/read tokens are bound
to a shared mailbox of the directory (APP, ORG or CAB, in a served domain):
a professional's own mailbox uses their own credentials, not a software token.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import DELEGABLE_KINDS, InvalidAddress, normalize_address
from gateway.base.config import Settings
from gateway.base.errors import InvalidInput, NotFound, Refused, UsageError
from gateway.cli.common import with_database
from gateway.mailstore.tokens import SCOPES, TokenInfo, TokenService
from vault import audit

__all__ = ["add_parser", "command", "run"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    t = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = t.add_parser("create", help="create a token (printed once) for a mailbox")
    common(p)
    p.add_argument(
        "--mailbox", default="", help="the mailbox the token acts for (required for send/read)"
    )
    p.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        required=True,
        help="send, read or audit (repeat for several)",
    )
    p.add_argument("--expires", type=int, metavar="DAYS", help="expire after DAYS days")
    p.add_argument("--label", default="", help="a note for operators (not content)")
    p = t.add_parser("list", help="tokens (ids, mailboxes, scopes; never secrets)")
    common(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p = t.add_parser("revoke", help="revoke a token at once")
    common(p)
    p.add_argument("id")


async def _check_mailbox(settings: Settings, engine: AsyncEngine, address: str) -> str:
    from contextlib import AsyncExitStack

    from gateway.app.backends import open_directory

    try:
        mailbox = normalize_address(address)
    except InvalidAddress as exc:
        raise InvalidInput(f"invalid mailbox address: {exc}") from None
    if mailbox.rpartition("@")[2] not in {d.lower() for d in settings.domains}:
        raise InvalidInput(f"{mailbox} is not in a domain this gateway serves")
    async with AsyncExitStack() as stack:
        entry = await open_directory(settings, engine, stack).resolve(mailbox)
    if entry is None:
        raise NotFound(f"{mailbox} is not in the directory; import it first")
    if entry.kind.value not in DELEGABLE_KINDS:
        raise Refused(
            f"{mailbox} is a {entry.kind.value} mailbox; API tokens are for "
            f"shared mailboxes ({', '.join(sorted(DELEGABLE_KINDS))})"
        )
    return mailbox


def _row(t: TokenInfo, now: dt.datetime) -> dict[str, Any]:
    state = "revoked" if t.revoked_at else "expired" if not t.usable(now) else "active"
    return {
        "id": t.id,
        "mailbox": t.mailbox,
        "scopes": sorted(t.scopes),
        "label": t.label,
        "state": state,
        "created_at": t.created_at.isoformat(),
        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
        "created_by": t.created_by,
    }


async def _event(
    engine: AsyncEngine, action: str, token_id: str, mailbox: str = "", **detail: str | int | bool
) -> None:
    async with engine.begin() as conn:
        await audit.append(
            conn,
            audit.AuditEvent(
                action=action,
                actor=f"cli:{getpass.getuser()}",
                mailbox=mailbox,
                detail={"token": token_id, **detail},
            ),
        )


async def run(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    tokens = TokenService(engine)
    now = dt.datetime.now(dt.UTC)
    if args.action == "create":
        scopes = set(args.scope)
        mailbox = ""
        if args.mailbox or scopes & {"send", "read"}:
            if not args.mailbox:
                raise UsageError("--mailbox is required for the send and read scopes")
            mailbox = await _check_mailbox(settings, engine, args.mailbox)
        if args.expires is not None and args.expires <= 0:
            raise UsageError("--expires must be a positive number of days")
        info, secret = await tokens.create(
            mailbox,
            scopes,
            label=args.label,
            created_by=f"cli:{getpass.getuser()}",
            expires_days=args.expires,
        )
        await _event(
            engine,
            "token.created",
            info.id,
            mailbox,
            scopes=" ".join(sorted(scopes)),
            expires_days=args.expires or 0,
        )
        print(secret)
        return 0
    if args.action == "list":
        rows = [_row(t, now) for t in await tokens.list()]
        if args.format == "json":
            for r in rows:
                print(json.dumps(r, sort_keys=True))
            return 0
        print(f"{'id':12}  {'state':8} {'scopes':16} {'expires (UTC)':20} mailbox")
        for r in rows:
            expires = (r["expires_at"] or "never")[:19]
            print(
                f"{r['id']:12}  {r['state']:8} {' '.join(r['scopes']):16} {expires:20} "
                f"{r['mailbox'] or '-'}"
            )
        return 0
    if not await tokens.revoke(args.id):
        raise NotFound(f"no active token {args.id}")
    await _event(engine, "token.revoked", args.id)
    print(f"token {args.id} revoked")
    return 0


command = with_database(run)
