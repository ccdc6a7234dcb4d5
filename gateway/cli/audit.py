"""``pli audit verify|checkpoint|seal|query|export|patient``: the trail for operators, auditors.

Verification checks, in order, the hash chain in the database, the signed
checkpoints, and the sealed segments in the vault, and names the first bad
entry. Queries print who did what to which mailbox, when and from where —
never content, which the trail does not hold.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.config import Settings
from gateway.cli.common import with_database
from vault import audit, checkpoints

__all__ = ["add_parser", "command", "run"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    a = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = a.add_parser("verify", help="verify the hash chain, checkpoints and sealed segments")
    common(p)
    p.add_argument(
        "--public-key",
        type=Path,
        help="Ed25519 public key (default: the .pub beside audit.signing_key_file)",
    )
    p = a.add_parser("checkpoint", help="sign the chain's head now")
    common(p)
    p = a.add_parser("seal", help="seal the entries not yet sealed into the vault now")
    common(p)
    p = a.add_parser("patient", help="every access to one patient's documents (by INS)")
    common(p)
    p.add_argument("ins", metavar="INS", help="the 15 characters (13 + key)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    for name, text in (
        ("query", "list audit entries"),
        ("export", "JSON lines with hashes, checkable outside pli"),
    ):
        p = a.add_parser(name, help=text)
        common(p)
        _filters(p)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mailbox")
    p.add_argument("--actor")
    p.add_argument("--action", dest="event_action", metavar="ACTION")
    p.add_argument("--since", type=_when, help="ISO date or time (UTC if no offset)")
    p.add_argument("--until", type=_when)
    p.add_argument("--limit", type=int)
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")


def _when(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


async def run(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    if args.action == "checkpoint":
        seq = await checkpoints.make_checkpoint(
            engine, checkpoints.Signer(settings.audit_key_path())
        )
        print(f"checkpoint signed at entry {seq}" if seq else "head already signed")
        return 0
    if args.action in ("seal", "verify"):
        from gateway.app.backends import open_vault

        async with AsyncExitStack() as stack:
            vault = await open_vault(settings, engine, stack)
            if args.action == "seal":
                return await _seal(settings, engine, vault)
            return await _verify(args, settings, engine, vault)
    if args.action == "patient":
        return await _patient(args, settings, engine)
    flt = audit.AuditFilter(
        mailbox=args.mailbox,
        actor=args.actor,
        action=args.event_action,
        since=args.since,
        until=args.until,
        limit=args.limit,
    )
    if args.action == "export":
        await export(engine, flt)
        return 0
    await _query(engine, flt, args.format)
    return 0


async def _seal(settings: Settings, engine: AsyncEngine, vault: Any) -> int:
    from vault.segments import seal_segment

    signer = checkpoints.Signer(settings.audit_key_path())
    sealed = 0
    while seg := await seal_segment(engine, vault, signer, max_entries=settings.audit.segment_max):
        print(f"sealed entries {seg.first_seq}..{seg.last_seq} into object {seg.object_name}")
        sealed += 1
    if not sealed:
        print("nothing to seal")
    return 0


async def _verify(
    args: argparse.Namespace, settings: Settings, engine: AsyncEngine, vault: Any
) -> int:
    from vault.segments import verify_segments

    report = await audit.verify(engine)
    if not report.ok:
        return _broken(report.first_bad_seq, report.problem)
    pub = args.public_key or settings.audit_key_path().with_suffix(".pub")
    if not pub.exists():
        print(
            f"audit chain OK: {report.entries} entries (no public key at {pub}: "
            "checkpoints and sealed segments not checked)"
        )
        return 0
    public = checkpoints.load_public_key(pub)
    signed = await checkpoints.verify_checkpoints(engine, public)
    if not signed.ok:
        return _broken(signed.bad_seq, signed.problem)
    sealed = await verify_segments(engine, vault, public)
    if not sealed.ok:
        return _broken(sealed.bad_seq, sealed.problem)
    print(
        f"audit chain OK: {report.entries} entries, {signed.checkpoints} signed checkpoints "
        f"and {sealed.segments} sealed segments ({sealed.entries} entries) verified"
    )
    return 0


def _broken(seq: int | None, problem: str) -> int:
    print(f"pli: audit chain BROKEN at entry {seq}: {problem}", file=sys.stderr)
    return 1


async def export(engine: AsyncEngine, flt: audit.AuditFilter) -> int:
    """JSON lines with each entry's hash and previous hash: checkable outside pli."""
    count = 0
    async for rec in audit.query(engine, flt):
        print(json.dumps(rec.as_dict(), sort_keys=True, ensure_ascii=False))
        count += 1
    return count


async def _patient(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    """The patient's right to know: who accessed their documents, when, from where."""
    from gateway.base.errors import InvalidInput, NotFound
    from gateway.core.patients import load_patient_key, patient_ref
    from gateway.xdm import XdmError
    from gateway.xdm.ins import parse_ins

    try:
        ins = parse_ins(args.ins)
    except XdmError as exc:
        raise InvalidInput(f"INS: {exc}") from None
    path = settings.patient_key_path()
    if not path.exists():
        raise NotFound(f"no patient pseudonymisation key at {path}: nothing was recorded")
    ref = patient_ref(load_patient_key(path), ins)
    count = await _print(audit.patient_trail(engine, ref), args.format)
    if args.format == "table":
        print(f"{count} entries about this patient's documents")
    return 0


async def _query(engine: AsyncEngine, flt: audit.AuditFilter, fmt: str) -> None:
    await _print(audit.query(engine, flt), fmt)


async def _print(records: AsyncIterator[audit.AuditRecord], fmt: str) -> int:
    cols = ["seq", "ts", "actor", "action", "mailbox", "msg_id", "result", "reason", "remote"]
    writer = csv.writer(sys.stdout) if fmt == "csv" else None
    if writer:
        writer.writerow(cols)
    elif fmt == "table":
        print(f"{'seq':>6}  {'time (UTC)':26}  {'action':18} {'result':7} {'actor':30} mailbox")
    count = 0
    async for rec in records:
        count += 1
        d = rec.as_dict()
        if fmt == "json":
            print(json.dumps(d, sort_keys=True))
        elif writer:
            writer.writerow([d[c] for c in cols])
        else:
            print(
                f"{rec.seq:>6}  {d['ts'][:26]:26}  {rec.action:18} {rec.result:7} "
                f"{rec.actor[:30]:30} {rec.mailbox}"
            )
    return count


command = with_database(run)
