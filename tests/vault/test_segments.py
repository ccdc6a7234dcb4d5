"""Sealed audit segments: sealing in runs, and every kind of tampering named at its entry.

Attacks come in two strengths: a database administrator (can rewrite tables
and recompute the whole hash chain, has no signing key) and, to test the
checker's own logic, forged segments signed with the real key (an insider
with everything) whose content is reordered or truncated.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vault import audit
from vault.checkpoints import Signer, create_signing_key, load_public_key
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider, create_kek_file
from vault.segments import _message, seal_segment, verify_segments
from vault.service import Vault
from vault.tables import audit_event, audit_head, audit_segment, vault_object

Parts = tuple[Vault, Signer, Path]  # the vault, the audit signer, its public key file


@pytest.fixture
def parts(engine: AsyncEngine, tmp_path: Path) -> Parts:
    create_kek_file(tmp_path / "kek")
    vault = Vault(
        engine, FsBlobStore(tmp_path / "blobs"), KeyFileProvider.from_file(tmp_path / "kek"), 4096
    )
    pub = create_signing_key(tmp_path / "audit.key")
    return vault, Signer(tmp_path / "audit.key"), pub


async def _append(engine: AsyncEngine, n: int) -> None:
    async with engine.begin() as conn:
        await audit.append_many(
            conn,
            [
                audit.AuditEvent(
                    action="smtp.accept",
                    actor=f"user{i}@ehpad.mssante.fr",
                    mailbox="urgences@ch-arras.mssante.fr",
                    msg_id=f"m{i}",
                    remote="127.0.0.1",
                    detail={"size": i, "tls": True},
                )
                for i in range(n)
            ],
        )


async def _sealed(engine: AsyncEngine, vault: Vault, signer: Signer, total: int) -> None:
    await _append(engine, total)
    while await seal_segment(engine, vault, signer, max_entries=10):
        pass


async def test_seals_in_runs_and_verifies(engine: AsyncEngine, parts: Parts) -> None:
    vault, signer, pub = parts
    assert await seal_segment(engine, vault, signer) is None  # nothing to seal
    await _append(engine, 25)
    first = await seal_segment(engine, vault, signer, max_entries=10)
    assert first is not None and (first.first_seq, first.last_seq) == (1, 10)
    while await seal_segment(engine, vault, signer, max_entries=10):
        pass
    async with engine.connect() as conn:
        ranges = (
            await conn.execute(
                select(audit_segment.c.first_seq, audit_segment.c.last_seq).order_by(
                    audit_segment.c.last_seq
                )
            )
        ).all()
        doc_types = set((await conn.execute(select(vault_object.c.doc_type))).scalars())
    assert [tuple(r) for r in ranges] == [(1, 10), (11, 20), (21, 25)]
    assert doc_types == {"audit-segment"}
    report = await verify_segments(engine, vault, load_public_key(pub))
    assert (report.ok, report.segments, report.entries) == (True, 3, 25), report
    # A segment is what `pli audit export` prints: JSON lines, readable without pli.
    lines = (await vault.get(first.object_name)).decode().splitlines()
    assert [json.loads(ln)["seq"] for ln in lines] == list(range(1, 11))


async def test_rewritten_database_is_caught_by_the_sealed_copy(
    engine: AsyncEngine, parts: Parts
) -> None:
    vault, signer, pub = parts
    await _sealed(engine, vault, signer, 25)
    # The administrator edits entry 15 and recomputes every hash after it.
    async with engine.begin() as conn:
        rows = (await conn.execute(select(audit_event).order_by(audit_event.c.seq))).all()
        prev = audit.GENESIS
        for r in rows:
            row = dict(r._mapping)
            if row["seq"] == 15:
                row["actor"] = "someone-else@ehpad.mssante.fr"
            digest = audit.entry_hash(row["seq"], row["ts"], row, prev)
            await conn.execute(
                update(audit_event)
                .where(audit_event.c.seq == row["seq"])
                .values(actor=row["actor"], prev_hash=prev, hash=digest)
            )
            prev = digest
        await conn.execute(update(audit_head).values(hash=prev))
    assert (await audit.verify(engine)).ok  # the chain alone cannot tell
    report = await verify_segments(engine, vault, load_public_key(pub))
    assert not report.ok and report.bad_seq == 15
    assert "database entry 15 differs from the sealed copy" in report.problem


async def test_altered_or_removed_segment_object(
    engine: AsyncEngine, parts: Parts, tmp_path: Path
) -> None:
    vault, signer, pub = parts
    await _sealed(engine, vault, signer, 25)
    async with engine.connect() as conn:
        name = (
            await conn.execute(
                select(audit_segment.c.object_name).where(audit_segment.c.first_seq == 11)
            )
        ).scalar_one()
    blob = next(p for p in (tmp_path / "blobs").rglob(name))
    data = bytearray(blob.read_bytes())
    data[40] ^= 1
    blob.write_bytes(bytes(data))
    report = await verify_segments(engine, vault, load_public_key(pub))
    assert (report.ok, report.bad_seq) == (False, 11)
    assert report.problem.startswith("segment 11..20: object unreadable (IntegrityError)")
    blob.unlink()
    report = await verify_segments(engine, vault, load_public_key(pub))
    assert report.bad_seq == 11 and "object unreadable (ObjectNotFound)" in report.problem


async def test_removed_segment_record_is_a_gap(engine: AsyncEngine, parts: Parts) -> None:
    vault, signer, pub = parts
    await _sealed(engine, vault, signer, 25)
    async with engine.begin() as conn:
        await conn.execute(delete(audit_segment).where(audit_segment.c.first_seq == 11))
    report = await verify_segments(engine, vault, load_public_key(pub))
    assert (report.ok, report.bad_seq) == (False, 11)
    assert report.problem == "sealed segment missing before segment 21..25"


async def _forge(
    engine: AsyncEngine, vault: Vault, first: int, lines: list[bytes], signer: Signer | None
) -> None:
    """Replace segment ``first`` with ``lines``; re-sign with ``signer`` (None: keep)."""
    import hashlib

    content = b"".join(ln + b"\n" for ln in lines)
    obj = await vault.put(content, doc_type="audit-segment")
    sha = hashlib.sha256(content).hexdigest()
    async with engine.begin() as conn:
        await vault.record(conn, obj)
        seg = (
            await conn.execute(select(audit_segment).where(audit_segment.c.first_seq == first))
        ).one()
        values: dict[str, object] = {"object_name": obj.name, "sha256": sha}
        if signer is not None:
            ts = seg.sealed_at.replace(tzinfo=dt.UTC)
            values["signature"] = signer.sign_bytes(
                _message(first, int(seg.last_seq), seg.last_hash, sha, ts)
            )
        await conn.execute(
            update(audit_segment).where(audit_segment.c.first_seq == first).values(**values)
        )


async def _lines(engine: AsyncEngine, vault: Vault, first: int) -> list[bytes]:
    async with engine.connect() as conn:
        name = (
            await conn.execute(
                select(audit_segment.c.object_name).where(audit_segment.c.first_seq == first)
            )
        ).scalar_one()
    return bytes(await vault.get(name)).splitlines()


async def test_forged_segment_without_the_key_fails_its_signature(
    engine: AsyncEngine, parts: Parts
) -> None:
    vault, signer, pub = parts
    await _sealed(engine, vault, signer, 25)
    lines = await _lines(engine, vault, 11)
    await _forge(engine, vault, 11, lines[:-1], signer=None)  # truncated, digest updated
    report = await verify_segments(engine, vault, load_public_key(pub))
    assert report.bad_seq == 11 and "signature invalid" in report.problem


@pytest.mark.parametrize(
    ("edit", "bad_seq", "problem"),
    [
        (lambda ls: [ls[1], ls[0], *ls[2:]], 11, "entry 11 missing or reordered"),
        (lambda ls: ls[:-1], 20, "ends before its recorded last entry"),
        (
            lambda ls: [*ls[:4], ls[4].replace(b"m14", b"m99"), *ls[5:]],
            15,
            "entry 15 does not fit the chain",
        ),
        (lambda ls: [*ls[:2], b"{not json", *ls[3:]], 13, "entry 13 is not a valid audit line"),
    ],
)
async def test_checker_names_reordered_truncated_and_edited_entries(
    engine: AsyncEngine,
    parts: Parts,
    edit: Callable[[list[bytes]], list[bytes]],
    bad_seq: int,
    problem: str,
) -> None:
    vault, signer, pub = parts
    await _sealed(engine, vault, signer, 25)
    await _forge(engine, vault, 11, edit(await _lines(engine, vault, 11)), signer=signer)
    report = await verify_segments(engine, vault, load_public_key(pub))
    assert (report.ok, report.bad_seq) == (False, bad_seq), report
    assert problem in report.problem
