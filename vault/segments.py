"""Sealed audit segments: runs of the chain exported into the vault, locked and signed.

The database is where the chain grows, and a database administrator can
rewrite it. Sealing copies each run of entries (JSON lines, the same form as
``pli audit export``) into a vault object that the store locks for the audit
retention period (S3 Object Lock) and records its range, last hash and SHA-256
with an Ed25519 signature. Verification re-reads every segment and checks: the
signature, the digest, that segments follow each other without gap, that the
chain recomputes inside and across segments, and that the database still
holds the same entries — so a rewritten table, an altered object or a removed
segment is each named at the first entry it touches. Sealing never changes
the chain itself (no audit entry per seal: that would always leave one entry
unsealed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import IntegrityError as DbIntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.audit import GENESIS, AuditRecord, entry_hash, record_from_row
from vault.base import VaultError
from vault.checkpoints import Signer, key_id_of
from vault.service import Vault
from vault.tables import audit_event, audit_head, audit_segment

__all__ = ["SealedSegment", "SegmentReport", "run_sealer", "seal_segment", "verify_segments"]

DOC_TYPE = "audit-segment"


def _message(first: int, last: int, last_hash: str, sha256: str, ts: dt.datetime) -> bytes:
    when = ts.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return f"pli-audit-segment\n{first}\n{last}\n{last_hash}\n{sha256}\n{when}".encode()


def _line(rec: AuditRecord) -> bytes:
    return json.dumps(rec.as_dict(), sort_keys=True, ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class SealedSegment:
    first_seq: int
    last_seq: int
    object_name: str


async def seal_segment(
    engine: AsyncEngine,
    vault: Vault,
    signer: Signer,
    *,
    max_entries: int = 100_000,
    now: dt.datetime | None = None,
) -> SealedSegment | None:
    """Seal the entries after the last segment (at most ``max_entries``), if any."""
    now = now or dt.datetime.now(dt.UTC)
    async with engine.connect() as conn:
        last = int((await conn.execute(select(func.max(audit_segment.c.last_seq)))).scalar() or 0)
        head = int(
            (await conn.execute(select(audit_head.c.seq).where(audit_head.c.id == 1))).scalar() or 0
        )
    if head <= last:
        return None
    upto = min(head, last + max_entries)
    summary: dict[str, object] = {}

    async def _lines() -> AsyncIterator[bytes]:
        digest, count, last_hash = hashlib.sha256(), 0, ""
        async with engine.connect() as conn:
            rows = await conn.stream(
                select(audit_event)
                .where(audit_event.c.seq > last, audit_event.c.seq <= upto)
                .order_by(audit_event.c.seq)
            )
            async for part in rows.partitions(2000):
                block = b"".join(_line(record_from_row(r)) for r in part)
                digest.update(block)
                count += len(part)
                last_hash = part[-1].hash
                yield block
        summary.update(sha256=digest.hexdigest(), count=count, last_hash=last_hash)

    obj = await vault.put(_lines(), doc_type=DOC_TYPE)
    count = int(summary["count"])  # type: ignore[call-overload]
    if count != upto - last:
        await vault.discard(obj)
        raise VaultError(
            f"audit entries {last + 1}..{upto} are not all in the database "
            f"({count} found): run pli audit verify"
        )
    sha, last_hash = str(summary["sha256"]), str(summary["last_hash"])
    try:
        async with engine.begin() as conn:
            await vault.record(conn, obj)
            await conn.execute(
                insert(audit_segment).values(
                    last_seq=upto,
                    first_seq=last + 1,
                    last_hash=last_hash,
                    object_name=obj.name,
                    sha256=sha,
                    entries=count,
                    sealed_at=now,
                    key_id=signer.key_id,
                    signature=signer.sign_bytes(_message(last + 1, upto, last_hash, sha, now)),
                )
            )
    except DbIntegrityError:
        await vault.discard(obj)  # another instance sealed the same range
        return None
    except BaseException:
        await vault.discard(obj)
        raise
    return SealedSegment(last + 1, upto, obj.name)


@dataclass(frozen=True, slots=True)
class SegmentReport:
    segments: int
    entries: int
    ok: bool
    bad_seq: int | None = None
    problem: str = ""


async def verify_segments(
    engine: AsyncEngine, vault: Vault, public: Ed25519PublicKey
) -> SegmentReport:
    """Check every sealed segment; name the first entry where something does not hold."""
    key_id = key_id_of(public)
    expected_first, prev_hash, segments, entries = 1, GENESIS, 0, 0

    def bad(seq: int, problem: str) -> SegmentReport:
        return SegmentReport(segments, entries, False, seq, problem)

    async with engine.connect() as conn:
        rows = (await conn.execute(select(audit_segment).order_by(audit_segment.c.last_seq))).all()
    for seg in rows:
        segments += 1
        first, last = int(seg.first_seq), int(seg.last_seq)
        where = f"segment {first}..{last}"
        if first != expected_first:
            return bad(expected_first, f"sealed segment missing before {where}")
        ts = seg.sealed_at if seg.sealed_at.tzinfo else seg.sealed_at.replace(tzinfo=dt.UTC)
        try:
            if seg.key_id != key_id:
                raise InvalidSignature
            public.verify(seg.signature, _message(first, last, seg.last_hash, seg.sha256, ts))
        except InvalidSignature:
            return bad(first, f"{where}: signature invalid (record altered or another key)")
        digest, rest = hashlib.sha256(), b""
        expected_seq = first
        db_hashes = await _db_hashes(engine, first, last)
        try:
            async for piece in vault.stream(seg.object_name):
                digest.update(piece)
                *complete, rest = (rest + piece).split(b"\n")
                for raw in complete:
                    problem = _check_line(raw, expected_seq, prev_hash, db_hashes, where)
                    if problem:
                        return bad(*problem)
                    prev_hash, expected_seq = json.loads(raw)["hash"], expected_seq + 1
                    entries += 1
        except VaultError as exc:
            return bad(
                first, f"{where}: object unreadable ({type(exc).__name__}): altered or removed"
            )
        if digest.hexdigest() != seg.sha256 or rest:
            return bad(first, f"{where}: object differs from the signed digest")
        if expected_seq != last + 1 or prev_hash != seg.last_hash:
            return bad(expected_seq, f"{where}: ends before its recorded last entry")
        expected_first = last + 1
    return SegmentReport(segments, entries, True)


def _check_line(
    raw: bytes, seq: int, prev_hash: str, db_hashes: dict[int, str], where: str
) -> tuple[int, str] | None:
    """What is wrong with one sealed entry (its seq and a sentence), or None."""
    try:
        entry = json.loads(raw)
        found = int(entry["seq"])
        entry["detail"] = json.dumps(entry["detail"], sort_keys=True, separators=(",", ":"))
        when = dt.datetime.fromisoformat(entry["ts"])
        ok = (
            entry["prev_hash"] == prev_hash
            and entry_hash(found, when, entry, prev_hash) == entry["hash"]
        )
    except (ValueError, KeyError, TypeError):
        return seq, f"{where}: entry {seq} is not a valid audit line"
    if found != seq:
        return seq, f"{where}: entry {seq} missing or reordered"
    if not ok:
        return seq, f"{where}: entry {seq} does not fit the chain"
    if seq in db_hashes and db_hashes[seq] != entry["hash"]:
        return seq, f"database entry {seq} differs from the sealed copy: rewritten"
    return None


async def _db_hashes(engine: AsyncEngine, first: int, last: int) -> dict[int, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(audit_event.c.seq, audit_event.c.hash).where(
                audit_event.c.seq >= first, audit_event.c.seq <= last
            )
        )
        return {int(s): str(h) for s, h in rows}


async def run_sealer(
    engine: AsyncEngine, vault: Vault, signer: Signer, *, interval: float, max_entries: int
) -> None:
    """Seal what accumulated every ``interval`` seconds (a failure waits for the next turn)."""
    while True:
        await asyncio.sleep(interval)
        try:
            while await seal_segment(engine, vault, signer, max_entries=max_entries):
                pass
        except (VaultError, OperationalError, DBAPIError, OSError):
            continue  # a dependency is down: the entries wait in the database meanwhile
