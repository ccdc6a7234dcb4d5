"""``pli vault proof MESSAGE_ID [--export DIR]``: what pli received, when, from whom, and
whether its notarisation receipts still verify.

Loads the message's evidence rows (``message_evidence``), the objects from the
vault and the ``message.accepted`` audit entry; :func:`gateway.core.proof.check`
decides which receipt covers which bytes and whether each verifies against the
PKI (roots, intermediates, CRLs). This module prints its facts (sizes,
digests, counts, times, addresses, result codes) and leaves an audit entry of
the access. ``--export`` writes files that ``openssl cms -verify`` checks
offline. It must never print message content, subjects or attachment names;
exported files are the operator's to protect.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import os
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.config import Settings
from gateway.base.errors import NotFound
from gateway.core import evidence, proof, records
from gateway.core.trust import TrustStore, load_trust
from gateway.mailstore import queries as mailbox_queries
from gateway.outbound import store as outbound_store
from vault import audit

__all__ = ["add_parser", "run"]


def add_parser(vault_sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = vault_sub.add_parser(
        "proof", help="what was received, when, from whom; receipts checked against the PKI"
    )
    common(p)
    p.add_argument("message_id", metavar="MESSAGE_ID", help="pli's message id (250 reply, logs)")
    p.add_argument(
        "--export",
        type=Path,
        default=None,
        metavar="DIR",
        help="write message.eml, message.p7s, part-N.bin/.p7s, original.eml, "
        "chain.pem for openssl cms -verify",
    )


async def _evidence_rows(
    engine: AsyncEngine, ref: str
) -> tuple[str | None, list[records.EvidenceRow]]:
    """(name of the main object, evidence rows) of a message."""
    rows = await records.evidence_rows(engine, ref)
    main = next((r.object_name for r in rows if r.kind == evidence.MESSAGE), None)
    if main is None:  # no evidence recorded: the body a mailbox or the queue points at
        main = await mailbox_queries.blob_of(engine, ref) or await outbound_store.blob_of(
            engine, ref
        )
    return main, rows


async def _accepted(engine: AsyncEngine, ref: str) -> audit.AuditRecord | None:
    flt = audit.AuditFilter(action="message.accepted", msg_id=ref, limit=1)
    async for rec in audit.query(engine, flt):
        return rec
    return None


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # evidence is health data
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _export(
    directory: Path,
    checks: Sequence[proof.ReceiptCheck],
    original: bytes | None,
    trust: TrustStore,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for c in checks:
        stem = c.covers.replace(" ", "-")  # message, original, part-3
        _write(directory / f"{stem}.{'bin' if c.part is not None else 'eml'}", c.data)
        _write(directory / f"{stem}.p7s", c.receipt)
    if original is not None:
        _write(directory / "original.eml", original)
    _write(
        directory / "chain.pem",
        b"".join(c.public_bytes(Encoding.PEM) for c in (*trust.intermediates, *trust.roots)),
    )


async def run(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from gateway.app.backends import open_vault

    ref = args.message_id.strip()
    main_name, rows = await _evidence_rows(engine, ref)
    if main_name is None:
        raise NotFound(f"no message {ref} in this gateway")
    async with AsyncExitStack() as stack:
        vault = await open_vault(settings, engine, stack)
        # bytes: asn1crypto accepts nothing else, and a one-off command can pay the copy
        main = bytes(await vault.get(main_name))
        original_name = next((r.object_name for r in rows if r.kind == evidence.ORIGINAL), None)
        original = bytes(await vault.get(original_name)) if original_name else None
        receipts = [
            (r.kind, r.part, bytes(await vault.get(r.object_name)))
            for r in rows
            if r.kind in evidence.RECEIPTS
        ]
    trust = await asyncio.to_thread(load_trust, settings)
    checked = await asyncio.to_thread(proof.check, trust, main, original, receipts)
    accepted = await _accepted(engine, ref)
    detail = accepted.detail if accepted else {}
    attachments = checked.attachments
    print(f"message    {ref}")
    print(
        f"received   {len(main)} bytes, sha256 {hashlib.sha256(main).hexdigest()}, "
        f"{attachments} attachment{'s' if attachments != 1 else ''}"
    )
    if original is not None:
        print(
            f"original   {len(original)} bytes, sha256 {hashlib.sha256(original).hexdigest()}"
            " (S/MIME form as received, kept as evidence)"
        )
    when = checked.received_at
    print(f"at         {when.isoformat() if when else 'unknown (no valid receipt)'}")
    if accepted is not None:
        print(
            f"from       {accepted.actor or '<>'} (protocol {detail.get('protocol', '?')}, "
            f"client {accepted.remote or '-'})"
        )
    smime = str(detail.get("smime", "not recorded"))
    reason = f" ({detail['smime_reason']})" if detail.get("smime_reason") else ""
    print(f"s/mime     {smime}{reason}, decrypted: {'yes' if detail.get('decrypted') else 'no'}")
    for c in checked.checks:
        state = "verifies" if c.ok else f"DOES NOT VERIFY ({c.why})"
        print(f"receipt    {c.covers}: {state}")
    if not checked.checks:
        print("receipt    none (notarisation was off when this message arrived)")
    if args.export is not None:
        await asyncio.to_thread(_export, args.export, checked.checks, original, trust)
        print(
            f"exported   {args.export} (check: openssl cms -verify -binary -inform DER "
            "-in message.p7s -content message.eml -CAfile chain.pem -purpose any)"
        )
    async with engine.begin() as conn:  # HDS: every access to a record is traced
        await audit.append(
            conn,
            audit.AuditEvent(
                action="vault.proof",
                actor=f"cli:{getpass.getuser()}",
                msg_id=ref,
                result="ok" if checked.verified else "fail",
                detail={"receipts": len(checked.checks), "exported": args.export is not None},
            ),
        )
    return 0 if checked.verified else 1
