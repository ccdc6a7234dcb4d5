"""Retention dates and legal holds, refused by pli on the filesystem and by S3 itself.

The filesystem cannot protect a file from its owner, so pli's own refusal is
what is tested there; on S3 (moto's server with object lock) the store must
refuse too, even when pli is bypassed.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.moto_s3 import MotoS3Server
from vault import audit, retention
from vault.base import LegalHoldActive, ObjectNotFound, RetentionLocked
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider, create_kek_file
from vault.retention import RetentionPolicy
from vault.s3 import S3BlobStore
from vault.service import Vault
from vault.tables import audit_event, vault_object

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
POLICY = RetentionPolicy(
    default_days=30,
    doc_types={"audit-segment": 3650, "scratch": 0},
    mailboxes={"urgences@ch-arras.mssante.fr": 7300, "@ehpad.mssante.fr": 100},
)


def test_longest_applicable_period_wins() -> None:
    assert POLICY.days_for("message") == 30  # no rule names it: the default
    assert POLICY.days_for("message", ["URGENCES@ch-arras.mssante.fr"]) == 7300
    assert POLICY.days_for("message", ["a@ehpad.mssante.fr"]) == 100  # by domain
    assert (
        POLICY.days_for("message", ["a@ehpad.mssante.fr", "urgences@ch-arras.mssante.fr"]) == 7300
    )
    assert POLICY.days_for("audit-segment", ["a@ehpad.mssante.fr"]) == 3650
    assert POLICY.until(NOW, "scratch") is None  # 0 days: no retention date
    assert POLICY.until(NOW, "message") == NOW + dt.timedelta(days=30)


@pytest.fixture
def vault(engine: AsyncEngine, tmp_path: Path) -> Vault:
    create_kek_file(tmp_path / "kek")
    return Vault(
        engine,
        FsBlobStore(tmp_path / "blobs"),
        KeyFileProvider.from_file(tmp_path / "kek"),
        4096,
        retention=POLICY,
    )


async def _stored(engine: AsyncEngine, vault: Vault, data: bytes, **kw: object) -> str:
    obj = await vault.put(data, **kw)  # type: ignore[arg-type]
    async with engine.begin() as conn:
        await vault.record(conn, obj)
    return obj.name


async def _deletions(engine: AsyncEngine) -> list[audit.AuditRecord]:
    flt = audit.AuditFilter(action="vault.delete")
    return [r async for r in audit.query(engine, flt)]


async def test_retained_object_is_refused_until_its_date(engine: AsyncEngine, vault: Vault) -> None:
    name = await _stored(engine, vault, b"dossier", mailboxes=["a@ehpad.mssante.fr"])
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(vault_object.c.retain_until, vault_object.c.doc_type).where(
                    vault_object.c.name == name
                )
            )
        ).one()
    until = row.retain_until.replace(tzinfo=dt.UTC)
    assert row.doc_type == "message"
    assert abs(until - dt.datetime.now(dt.UTC) - dt.timedelta(days=100)) < dt.timedelta(minutes=5)
    with pytest.raises(RetentionLocked, match=f"object {name} is retained until"):
        await vault.delete(name, actor="cli:op", reason="operator")
    assert await vault.get(name) == b"dossier"  # nothing happened
    later = until + dt.timedelta(seconds=1)
    await vault.delete(name, actor="cli:op", reason="retention-expired", now=later)
    with pytest.raises(ObjectNotFound):
        await vault.get(name)
    [event] = await _deletions(engine)
    assert (event.actor, event.reason, event.result) == ("cli:op", "retention-expired", "ok")
    assert event.detail == {"object": name, "doc_type": "message"}
    with pytest.raises(ObjectNotFound):  # deleting twice names the object
        await vault.delete(name, actor="cli:op", reason="again", now=later)


async def test_legal_hold_blocks_deletion_until_every_hold_is_released(
    engine: AsyncEngine, vault: Vault
) -> None:
    name = await _stored(engine, vault, b"litigation", doc_type="scratch")  # no date at all
    other = await _stored(engine, vault, b"free", doc_type="scratch")
    async with engine.begin() as conn:
        first = await retention.place_hold(conn, [name], "enquête CPAM 2026-17", "cli:op", NOW)
        second = await retention.place_hold(conn, [name, other], "contentieux", "cli:op", NOW)
    with pytest.raises(LegalHoldActive, match=name):
        await vault.delete(name, actor="cli:op", reason="operator")
    async with engine.begin() as conn:
        freed = await retention.release_hold(conn, second, "cli:dpo", NOW)
    assert freed == [other]  # `name` is still under the first hold
    with pytest.raises(LegalHoldActive):
        await vault.delete(name, actor="cli:op", reason="operator")
    await vault.delete(other, actor="cli:op", reason="operator")
    async with engine.begin() as conn:
        holds = await retention.list_holds(conn, active_only=False)
        assert [(h.id, h.objects, h.released_by) for h in holds] == [
            (first, 1, None),
            (second, 2, "cli:dpo"),
        ]
        assert await retention.release_hold(conn, first, "cli:dpo", NOW) == [name]
        with pytest.raises(retention.HoldNotFound):  # already released
            await retention.release_hold(conn, first, "cli:dpo", NOW)
    await vault.delete(name, actor="cli:op", reason="operator")
    assert len(await _deletions(engine)) == 2


async def test_expired_lists_only_past_unheld_objects(engine: AsyncEngine, vault: Vault) -> None:
    short = await _stored(engine, vault, b"short")  # 30 days
    long = await _stored(engine, vault, b"long", mailboxes=["urgences@ch-arras.mssante.fr"])
    held_one = await _stored(engine, vault, b"held")
    dateless = await _stored(engine, vault, b"dateless", doc_type="scratch")
    in_a_year = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    async with engine.begin() as conn:
        await retention.place_hold(conn, [held_one], "contentieux", "cli:op", NOW)
        assert await retention.expired(conn, dt.datetime.now(dt.UTC)) == []
        found = await retention.expired(conn, in_a_year)
    assert found == [short]
    assert long not in found and held_one not in found and dateless not in found


async def test_audit_never_holds_the_hold_reason_as_content(
    engine: AsyncEngine, vault: Vault
) -> None:
    """A deletion's audit entry names the object, never the data it held."""
    name = await _stored(engine, vault, b"Subject: secret diagnosis", doc_type="scratch")
    await vault.delete(name, actor="cli:op", reason="operator")
    async with engine.connect() as conn:
        texts = (await conn.execute(select(audit_event.c.detail))).scalars().all()
    assert texts
    assert not any("secret" in t for t in texts)


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
async def test_s3_locks_each_object_until_its_own_date_and_holds(
    engine: AsyncEngine,
    moto: MotoS3Server,
    tmp_path: Path,
    mode: Literal["GOVERNANCE", "COMPLIANCE"],
) -> None:
    bucket = f"pli-ret-{secrets.token_hex(4)}"
    store = S3BlobStore(
        moto.endpoint,
        moto.access_key,
        moto.secret_key,
        bucket,
        secure=False,
        part_size=5 * 1024 * 1024,
        object_lock=mode,
        retention_days=1,
    )
    await store.ensure_bucket()
    create_kek_file(tmp_path / "kek")
    vault = Vault(
        engine, store, KeyFileProvider.from_file(tmp_path / "kek"), 4096, retention=POLICY
    )
    try:
        name = await _stored(
            engine, vault, b"dossier urgences", mailboxes=["urgences@ch-arras.mssante.fr"]
        )
        head = store._client.stat_object(bucket, name).metadata or {}
        until = dt.datetime.fromisoformat(head["x-amz-object-lock-retain-until-date"])
        # The vault's 20 years, not the bucket's 1-day floor.
        assert until > dt.datetime.now(dt.UTC) + dt.timedelta(days=7290)
        with pytest.raises(RetentionLocked):  # S3 itself, pli bypassed
            await store.delete(name)

        scratch = await _stored(engine, vault, b"scratch", doc_type="scratch")
        async with engine.begin() as conn:
            await retention.place_hold(conn, [scratch], "contentieux", "cli:op", NOW)
        await vault.set_holds([scratch], True)
        head = store._client.stat_object(bucket, scratch).metadata or {}
        assert head.get("x-amz-object-lock-legal-hold", "").upper() == "ON"
        names = {n async for n, _ in store.listing()}
        assert {name, scratch} <= names
    finally:
        await store.aclose()
