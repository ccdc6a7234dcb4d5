"""``pli vault verify|rotate-kek|hold|delete|purge|sweep``: vault upkeep.

Every command that removes or protects data is explicit, prints what it did
object by object, and leaves an audit entry; a refusal (retention, hold) is a
one-line error naming the object and the date or hold.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.config import Settings
from gateway.base.errors import NotFound, Refused
from gateway.cli import proof as cli_proof
from gateway.cli.common import with_database
from gateway.outbound.store import OutboundQueue
from vault import audit
from vault.base import KeyProvider
from vault.service import Vault

__all__ = ["add_parser", "command", "run"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    v = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    cli_proof.add_parser(v, common)
    p = v.add_parser("verify", help="decrypt and check every object (tags and digests)")
    common(p)
    p = v.add_parser("rotate-kek", help="new key-encryption key; re-wrap every data key")
    common(p)
    p.add_argument(
        "--resume", action="store_true", help="no new key: finish re-wrapping under the current one"
    )
    p.add_argument(
        "--drop-unused",
        action="store_true",
        help="then remove the keys nothing uses any more (key file or HSM)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="before dropping, wait this long and re-wrap once more: running "
        "servers follow a rotation within a second, transactions in "
        "flight commit meanwhile",
    )

    h = v.add_parser("hold", help="legal holds: keep objects whatever their retention date")
    hs = h.add_subparsers(dest="hold_action", required=True, metavar="HOLD_ACTION")
    p = hs.add_parser("place", help="hold a message's or a mailbox's objects")
    common(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--message", metavar="MSG_ID", help="pli's message id (in logs, replies)")
    what.add_argument("--mailbox", metavar="ADDRESS", help="every message held by a mailbox")
    what.add_argument("--object", metavar="NAME", action="append", help="vault object names")
    p.add_argument("--reason", required=True, help="why (a case reference, not patient data)")
    p = hs.add_parser("release", help="release a hold by its id")
    common(p)
    p.add_argument("hold_id", type=int)
    p = hs.add_parser("list", help="holds in force (with --all: released ones too)")
    common(p)
    p.add_argument("--all", action="store_true")

    p = v.add_parser("delete", help="delete one object (refused while retained or held)")
    common(p)
    p.add_argument("name")
    p.add_argument("--reason", required=True)
    p = v.add_parser("purge", help="delete what is past its retention date (and its messages)")
    common(p)
    p.add_argument("--dry-run", action="store_true", help="only count what would go")
    p = v.add_parser("sweep", help="remove blobs no row records (left by a crash)")
    common(p)
    p.add_argument(
        "--grace",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="leave younger blobs alone: their transaction may still run",
    )
    p.add_argument("--dry-run", action="store_true")


def _progress(label: str) -> Callable[[int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(n: int) -> None:
        sys.stderr.write(f"\r{label}: {n:,}")
        sys.stderr.flush()

    return show


async def _event(
    engine: AsyncEngine, action: str, result: str = "ok", **detail: str | int | bool
) -> None:
    async with engine.begin() as conn:
        await audit.append(
            conn, audit.AuditEvent(action=action, actor=_actor(), result=result, detail=detail)
        )


async def run(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    if args.action == "proof":
        return await cli_proof.run(args, settings, engine)
    from vault import maintenance
    from vault.keys import KeyFileProvider

    env_key = os.environ.get("PLI_VAULT_KEK_HEX")
    if args.action == "rotate-kek" and settings.vault.kek == "pkcs11":
        return await _rotate_in_hsm(args, settings, engine)
    if args.action == "rotate-kek":
        if env_key:
            raise Refused(
                "the key-encryption key comes from PLI_VAULT_KEK_HEX: rotate it "
                "where it is kept, then set the old one second in a key file"
            )
        path = settings.kek_path()
        keys = KeyFileProvider.from_file(path) if args.resume else maintenance.rotate_kek_file(path)
        report = await maintenance.rewrap(engine, keys, _progress("re-wrapped"))
        dropped = []
        if args.drop_unused:
            report.rewrapped += await _settle(args, engine, keys)
            dropped = await maintenance.drop_unused_keks(engine, path)
        await _event(
            engine,
            "vault.kek_rotated",
            kek_id=report.new_kek_id,
            rewrapped=report.rewrapped,
            dropped=len(dropped),
        )
        print(
            f"current key-encryption key {report.new_kek_id}: {report.rewrapped} data keys "
            f"re-wrapped; {len(dropped)} old keys removed from {path}"
        )
        return 0
    from contextlib import AsyncExitStack

    from gateway.app.backends import open_vault

    async with AsyncExitStack() as stack:
        vault = await open_vault(settings, engine, stack)
        if args.action != "verify":
            return await _retention_action(args, engine, vault, _queue(settings))
        result = await maintenance.verify_objects(engine, vault, _progress("verified"))
    for name, reason in result.failures:
        print(f"pli: object {name}: {reason}", file=sys.stderr)
    await _event(
        engine,
        "vault.verify",
        result="ok" if result.ok else "fail",
        checked=result.checked,
        failed=len(result.failures),
    )
    print(f"{result.checked} objects checked ({result.bytes} bytes), {len(result.failures)} failed")
    return 0 if result.ok else 1


async def _settle(args: argparse.Namespace, engine: AsyncEngine, keys: KeyProvider) -> int:
    """Catch objects a server wrapped with the old key just before it followed the rotation."""
    from vault import maintenance

    await asyncio.sleep(args.settle)
    return (await maintenance.rewrap(engine, keys)).rewrapped


async def _rotate_in_hsm(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    """The same rotation with the KEKs inside a PKCS#11 token: generated and destroyed there."""
    from contextlib import AsyncExitStack

    from gateway.app.backends import open_pkcs11_key_provider
    from vault import maintenance

    async with AsyncExitStack() as stack:
        keys = await open_pkcs11_key_provider(settings, stack)
        if not args.resume:
            await keys.rotate()
        report = await maintenance.rewrap(engine, keys, _progress("re-wrapped"))
        dropped: list[str] = []
        if args.drop_unused:
            report.rewrapped += await _settle(args, engine, keys)
            used = await maintenance.count_by_kek(engine)
            dropped = [k for k in keys.kek_ids() if k not in used and k != report.new_kek_id]
            await keys.destroy(dropped)
    await _event(
        engine,
        "vault.kek_rotated",
        kek_id=report.new_kek_id,
        rewrapped=report.rewrapped,
        dropped=len(dropped),
        hsm=True,
    )
    print(
        f"current key-encryption key {report.new_kek_id}: {report.rewrapped} data keys "
        f"re-wrapped; {len(dropped)} old keys destroyed in the HSM"
    )
    return 0


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


async def _retention_action(
    args: argparse.Namespace, engine: AsyncEngine, vault: Vault, queue: OutboundQueue
) -> int:
    import datetime as dt

    from gateway.mailstore import expiry
    from vault import maintenance, retention
    from vault.base import LegalHoldActive, ObjectNotFound, RetentionLocked

    now = dt.datetime.now(dt.UTC)
    if args.action == "delete":
        try:
            await vault.delete(args.name, actor=_actor(), reason=args.reason)
        except (RetentionLocked, LegalHoldActive) as exc:
            raise Refused(f"refused: {exc}") from None
        except ObjectNotFound:
            raise NotFound(f"no object {args.name} in the vault") from None
        print(f"deleted {args.name}")
        return 0
    if args.action == "purge":
        report = await expiry.purge_expired(
            engine, vault, queue, actor=_actor(), dry_run=args.dry_run
        )
        for name in report.deleted:
            print(f"deleted {name}")
        for name, why in report.skipped:
            print(f"kept {name}: {why}")
        verb = "would delete" if args.dry_run else "deleted"
        print(
            f"{report.expired} objects past retention; {verb} "
            f"{report.expired if args.dry_run else len(report.deleted)}, "
            f"{report.messages_removed} messages removed, {len(report.skipped)} kept"
        )
        return 0 if not report.skipped else 1
    if args.action == "sweep":
        orphans = await maintenance.sweep_orphans(
            engine, vault, dt.timedelta(seconds=args.grace), dry_run=args.dry_run
        )
        for name in orphans.orphans:
            print(f"{'orphan' if args.dry_run else 'removed'} {name}")
        for name in orphans.kept_locked:
            print(f"kept {name}: locked by the store")
        await _event(
            engine,
            "vault.sweep",
            listed=orphans.listed,
            orphans=len(orphans.orphans),
            removed=orphans.removed,
            dry_run=args.dry_run,
        )
        print(
            f"{orphans.listed} blobs listed, {len(orphans.orphans)} orphans, "
            f"{orphans.removed} removed"
        )
        return 0
    # hold
    if args.hold_action == "list":
        async with engine.connect() as conn:
            holds = await retention.list_holds(conn, active_only=not args.all)
        for h in holds:
            state = (
                f"released {h.released_at:%Y-%m-%d} by {h.released_by}"
                if h.released_at
                else "active"
            )
            print(
                f"{h.id:>5}  {h.placed_at:%Y-%m-%d}  {h.placed_by:<20} {h.objects:>6} objects"
                f"  {state}  {h.reason}"
            )
        return 0
    if args.hold_action == "release":
        async with engine.begin() as conn:
            freed = await retention.release_hold(conn, args.hold_id, _actor(), now)
            await audit.append(
                conn,
                audit.AuditEvent(
                    action="vault.hold_released",
                    actor=_actor(),
                    detail={"hold": args.hold_id, "freed": len(freed)},
                ),
            )
        await vault.set_holds(freed, False)
        print(f"hold {args.hold_id} released; {len(freed)} objects no longer held")
        return 0
    if args.message:
        names = await expiry.objects_of_message(engine, queue, args.message)
    elif args.mailbox:
        names = await expiry.objects_of_mailbox(engine, args.mailbox)
    else:
        names = sorted(set(args.object))
    if not names:
        raise NotFound(
            "nothing to hold: no object found for "
            f"{args.message or args.mailbox or ' '.join(args.object)}"
        )
    async with engine.begin() as conn:
        missing = await retention.unknown_objects(conn, names)
        if missing:
            raise NotFound(f"no object {missing[0]} in the vault")
        hold_id = await retention.place_hold(conn, names, args.reason[:255], _actor(), now)
        await audit.append(
            conn,
            audit.AuditEvent(
                action="vault.hold_placed",
                actor=_actor(),
                mailbox=args.mailbox or "",
                msg_id=args.message or "",
                detail={"hold": hold_id, "objects": len(names)},
            ),
        )
    await vault.set_holds(names, True)
    print(f"hold {hold_id} placed on {len(names)} objects")
    return 0


def _queue(settings: Settings) -> OutboundQueue:
    """The outbound queue as the retention code sees it (rows only: no worker runs here)."""
    return OutboundQueue(settings.queue.max_age)


command = with_database(run)
