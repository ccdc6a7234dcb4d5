"""Signed checkpoints catch what the hash chain alone cannot: a fully recomputed chain."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vault import audit, checkpoints
from vault.tables import audit_checkpoint, audit_event, audit_head


async def _events(engine: AsyncEngine, n: int, actor: str = "a@x.fr") -> None:
    async with engine.begin() as conn:
        await audit.append_many(conn, [audit.AuditEvent(action="login", actor=actor)] * n)


async def _recompute_chain(engine: AsyncEngine) -> None:
    """What a database administrator could do: rewrite entry 2, fix every hash after it."""
    async with engine.begin() as conn:
        await conn.execute(
            update(audit_event).where(audit_event.c.seq == 2).values(actor="someone-else@x.fr")
        )
        rows = (await conn.execute(select(audit_event).order_by(audit_event.c.seq))).all()
        prev = audit.GENESIS
        for r in rows:
            new = audit.entry_hash(r.seq, r.ts, r._mapping, prev)
            await conn.execute(
                update(audit_event)
                .where(audit_event.c.seq == r.seq)
                .values(prev_hash=prev, hash=new)
            )
            prev = new
        await conn.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=prev))


async def test_a_recomputed_chain_no_longer_matches_its_checkpoint(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    pub = checkpoints.create_signing_key(tmp_path / "audit.key")
    assert (tmp_path / "audit.key").stat().st_mode & 0o077 == 0
    signer, public = checkpoints.Signer(tmp_path / "audit.key"), checkpoints.load_public_key(pub)
    assert await checkpoints.make_checkpoint(engine, signer) is None  # empty chain
    await _events(engine, 5)
    assert await checkpoints.make_checkpoint(engine, signer) == 5
    assert await checkpoints.make_checkpoint(engine, signer) is None  # head unchanged
    await _events(engine, 3)
    assert await checkpoints.make_checkpoint(engine, signer) == 8
    assert (await checkpoints.verify_checkpoints(engine, public)).ok

    await _recompute_chain(engine)
    assert (await audit.verify(engine)).ok  # the chain alone is fooled...
    report = await checkpoints.verify_checkpoints(engine, public)
    assert not report.ok and report.bad_seq == 5 and "rewritten" in report.problem


async def test_forged_cut_and_foreign_checkpoints(engine: AsyncEngine, tmp_path: Path) -> None:
    checkpoints.create_signing_key(tmp_path / "k1")
    pub2 = checkpoints.create_signing_key(tmp_path / "k2")
    signer = checkpoints.Signer(tmp_path / "k1")
    public = checkpoints.load_public_key(tmp_path / "k1.pub")
    await _events(engine, 4)
    await checkpoints.make_checkpoint(engine, signer)
    assert not (
        await checkpoints.verify_checkpoints(engine, checkpoints.load_public_key(pub2))
    ).ok  # someone else's key
    async with engine.begin() as conn:
        await conn.execute(update(audit_checkpoint).values(hash="0" * 64))
    bad = await checkpoints.verify_checkpoints(engine, public)
    assert not bad.ok and "signature invalid" in bad.problem
    async with engine.begin() as conn:
        await conn.execute(delete(audit_checkpoint))
    await checkpoints.make_checkpoint(engine, signer)
    async with engine.begin() as conn:  # cut the end of the chain, head moved back too
        await conn.execute(delete(audit_event).where(audit_event.c.seq == 4))
    cut = await checkpoints.verify_checkpoints(engine, public)
    assert not cut.ok and cut.bad_seq == 4 and "cut" in cut.problem
