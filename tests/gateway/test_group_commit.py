"""Group commit on SQLite and PostgreSQL: many concurrent deliveries, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.sql import SqlDirectory
from directory.sql_import import import_extraction
from gateway.core.commit import CommitBatcher, PendingMessage
from gateway.core.ingest import IngestService
from gateway.core.model import Origin
from gateway.core.ports import INBOX, Principal
from gateway.imap.bodystructure import structure
from gateway.mailstore.accounts import Accounts
from gateway.mailstore.store import MailStore
from gateway.mailstore.tables import message
from gateway.outbound.store import OutboundQueue
from policies.engine import PolicyEngine
from vault import audit
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider, create_kek_file
from vault.service import StoredObject, Vault

FIX = Path(__file__).parent.parent / "fixtures" / "directory"
SENDER = "jean.petit@medecin.mssante.fr"
RCPTS = ["sophie.bernard@ch-arras.mssante.fr", "urgences@ch-arras.mssante.fr"]


@pytest.fixture
async def parts(engine: AsyncEngine, tmp_path: Path) -> tuple[AsyncEngine, Vault]:
    await import_extraction(engine, FIX / "extraction-sample.txt")
    create_kek_file(tmp_path / "kek")
    vault = Vault(engine, FsBlobStore(tmp_path / "v"), KeyFileProvider.from_file(tmp_path / "kek"))
    return engine, vault


async def test_concurrent_deliveries_all_committed_once(
    parts: tuple[AsyncEngine, Vault],
) -> None:
    engine, vault = parts
    policy = PolicyEngine(SqlDirectory(engine), ["ch-arras.mssante.fr", "medecin.mssante.fr"])
    store = MailStore(engine, vault, Accounts(engine), structure=structure)
    ingest = IngestService(
        engine, vault, policy, "test.local", mailboxes=store, queue=OutboundQueue(3600)
    )

    async def deliver(i: int) -> str:
        d = ingest.begin(Origin.mta(f"s{i}", "127.0.0.1"))
        assert (await d.add_sender(SENDER)).accepted
        for r in RCPTS:
            assert (await d.add_recipient(r)).accepted
        await d.put_body(f"Subject: n{i}\r\n\r\nbody {i}\r\n".encode())
        return await d.commit()

    refs = await asyncio.gather(*(deliver(i) for i in range(40)))
    assert len(set(refs)) == 40
    for rcpt in RCPTS:
        view = await store.select(Principal(rcpt), INBOX)
        uids = [m.uid for m in view.messages]
        assert uids == list(range(1, 41))  # dense, unique, in commit order
        assert view.uid_next == 41
    report = await audit.verify(engine)
    assert report.ok and report.entries == 40 * 3


async def test_a_failing_message_does_not_fail_its_batch(
    parts: tuple[AsyncEngine, Vault],
) -> None:
    engine, vault = parts
    batcher = CommitBatcher(
        engine,
        vault,
        queue=OutboundQueue(3600),
        mailboxes=MailStore(engine, vault, Accounts(engine), structure=structure),
    )
    good = [await vault.put(f"m{i}".encode()) for i in range(3)]
    # The same vault object twice: its second insert violates the primary key.
    poison = good[0]

    def item(ref: str, obj: StoredObject) -> PendingMessage:
        return PendingMessage(
            ref=ref,
            stored=obj,
            recipients=(RCPTS[0],),
            events=(audit.AuditEvent(action="t", msg_id=ref),),
            received_at=dt.datetime.now(dt.UTC),
        )

    results = await asyncio.gather(
        batcher.commit(item("a", good[0])),
        batcher.commit(item("b", good[1])),
        batcher.commit(item("p", poison)),
        batcher.commit(item("c", good[2])),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and results[2] is failures[0]
    async with engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(message))).scalar_one()
    assert count == 3
    assert (await audit.verify(engine)).ok
