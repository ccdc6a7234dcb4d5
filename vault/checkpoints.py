"""Signed audit checkpoints: Ed25519 signatures over (seq, hash, time) of the chain head.

The hash chain shows that entries were changed unless the whole chain after
them was recomputed; a database administrator could do that. A checkpoint,
signed with a key the database never holds, pins the head at a moment: a
recomputed chain no longer matches the signed hash, and deleting the
checkpoints shows as a gap an auditor sees. The private key stays in a 0600
file (PKCS#11 later); the public key is exported for auditors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.base import VaultError
from vault.tables import audit_checkpoint, audit_event, audit_head

__all__ = [
    "CheckpointReport",
    "Signer",
    "create_signing_key",
    "key_id_of",
    "load_public_key",
    "make_checkpoint",
    "run_checkpointer",
    "verify_checkpoints",
]


def key_id_of(public: Ed25519PublicKey) -> str:
    """A short, stable name for a signing key (stored beside each signature)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _message(seq: int, chain_hash: str, ts: dt.datetime) -> bytes:
    when = ts.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return f"pli-audit-checkpoint\n{seq}\n{chain_hash}\n{when}".encode()


def create_signing_key(path: Path) -> Path:
    """A new Ed25519 key (PEM, 0600) and its public half beside it (.pub); never overwrite."""
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    pub = path.with_suffix(".pub")
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pub


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise VaultError(f"cannot read the audit public key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise VaultError(f"{path} is not an Ed25519 public key")
    return key


class Signer:
    def __init__(self, path: Path) -> None:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise VaultError(
                f"cannot read the audit signing key {path}: {type(exc).__name__}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise VaultError(f"{path} is not an Ed25519 private key")
        self._key = key
        self.key_id = key_id_of(key.public_key())

    def sign(self, seq: int, chain_hash: str, ts: dt.datetime) -> bytes:
        return self._key.sign(_message(seq, chain_hash, ts))

    def sign_bytes(self, message: bytes) -> bytes:
        """Sign a statement whose first line names what it is (no two kinds collide)."""
        return self._key.sign(message)


async def make_checkpoint(
    engine: AsyncEngine, signer: Signer, now: dt.datetime | None = None
) -> int | None:
    """Sign the current head if it moved since the last checkpoint; return its seq."""
    now = now or dt.datetime.now(dt.UTC)
    async with engine.begin() as conn:
        head = (await conn.execute(select(audit_head).where(audit_head.c.id == 1))).one_or_none()
        if head is None or int(head.seq) == 0:
            return None
        last = (await conn.execute(select(func.max(audit_checkpoint.c.seq)))).scalar()
        if last is not None and int(last) >= int(head.seq):
            return None
        try:
            await conn.execute(
                insert(audit_checkpoint).values(
                    seq=int(head.seq),
                    hash=head.hash,
                    ts=now,
                    key_id=signer.key_id,
                    signature=signer.sign(int(head.seq), head.hash, now),
                )
            )
        except IntegrityError:
            return None  # another instance signed the same head
    return int(head.seq)


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    checkpoints: int
    ok: bool
    bad_seq: int | None = None
    problem: str = ""


async def verify_checkpoints(engine: AsyncEngine, public: Ed25519PublicKey) -> CheckpointReport:
    """Every checkpoint: signed by this key, and equal to the chain at its seq."""
    key_id = key_id_of(public)
    count = 0
    async with engine.connect() as conn:
        rows = await conn.stream(select(audit_checkpoint).order_by(audit_checkpoint.c.seq))
        async for cp in rows:
            count += 1
            ts = cp.ts if cp.ts.tzinfo else cp.ts.replace(tzinfo=dt.UTC)
            if cp.key_id != key_id:
                return CheckpointReport(count, False, cp.seq, "checkpoint signed by another key")
            try:
                public.verify(cp.signature, _message(int(cp.seq), cp.hash, ts))
            except InvalidSignature:
                return CheckpointReport(count, False, cp.seq, "checkpoint signature invalid")
            async with engine.connect() as look:
                entry = (
                    await look.execute(
                        select(audit_event.c.hash).where(audit_event.c.seq == cp.seq)
                    )
                ).scalar()
            if entry is None:
                return CheckpointReport(
                    count, False, cp.seq, "signed entry missing: the chain was cut"
                )
            if entry != cp.hash:
                return CheckpointReport(
                    count, False, cp.seq, "chain differs from the signed checkpoint: rewritten"
                )
    return CheckpointReport(count, True)


async def run_checkpointer(
    engine: AsyncEngine, signer: Signer, *, interval: float, every: int, poll: float = 1.0
) -> None:
    """Sign the head every ``interval`` seconds, or sooner after ``every`` new entries."""
    loop_time = dt.datetime.now(dt.UTC)
    last_seq = 0
    while True:
        await asyncio.sleep(min(poll, interval))
        async with engine.connect() as conn:
            head = (
                await conn.execute(select(audit_head.c.seq).where(audit_head.c.id == 1))
            ).scalar() or 0
        now = dt.datetime.now(dt.UTC)
        due = (now - loop_time).total_seconds() >= interval
        if int(head) > last_seq and (due or int(head) - last_seq >= every):
            signed = await make_checkpoint(engine, signer, now)
            last_seq = signed or int(head)
            loop_time = now
