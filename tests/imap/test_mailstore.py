"""The SQL mailstore behind IMAP: MODSEQ, copy/move/expunge/append, mailboxes, delegation,
audit events and the IDLE notifier, on SQLite (schema from the packages' MetaData)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import Entry
from gateway.base.db import create_engine
from gateway.base.errors import MailboxExists, MailboxNotFound, PermissionDenied
from gateway.core.commit import CommitBatcher, PendingMessage
from gateway.core.ports import Principal, StoreMode
from gateway.imap.bodystructure import structure
from gateway.mailstore.accounts import Accounts
from gateway.mailstore.store import MailStore
from gateway.mailstore.tables import mailbox_acl
from gateway.migrations import all_metadata
from gateway.outbound.store import OutboundQueue
from vault import audit
from vault.fs import FsBlobStore
from vault.keys import KeyFileProvider
from vault.service import Vault
from vault.tables import audit_head

ME = Principal("nurse@ehpad.mssante.fr")
WARD = "urgences@ch.mssante.fr"
MSG = b"From: a@b.fr\r\nSubject: hello\r\n\r\nbody\r\n"


class _Directory:
    """Only what the mailstore asks: who may act for which shared mailbox."""

    async def resolve(self, address: str) -> Entry | None:
        return None

    async def is_trusted_domain(self, domain: str) -> bool:
        return True

    async def search(self, text: str, limit: int = 50) -> list[Entry]:
        return []

    async def certificates(self, address: str) -> tuple[bytes, ...]:
        return ()

    async def delegates(self, mailbox: str) -> frozenset[str]:
        return frozenset({ME.address}) if mailbox == WARD else frozenset()

    async def delegated_mailboxes(self, user: str) -> frozenset[str]:
        return frozenset({WARD}) if user == ME.address else frozenset()


@dataclass
class World:
    engine: AsyncEngine
    vault: Vault
    store: MailStore


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pli.db'}")
    async with engine.begin() as conn:  # the migrations are checked by test_migrations
        for md in all_metadata():
            await conn.run_sync(md.create_all)
        await conn.execute(audit_head.insert().values(id=1, seq=0, hash=audit.GENESIS))
    vault = Vault(engine, FsBlobStore(tmp_path / "v"), KeyFileProvider([secrets.token_hex(32)]))
    store = MailStore(engine, vault, Accounts(engine), structure=structure, directory=_Directory())
    yield World(engine, vault, store)
    await engine.dispose()


async def _actions(engine: AsyncEngine) -> list[str]:
    return [r.action async for r in audit.query(engine, audit.AuditFilter())]


async def test_append_select_fetch_flags_and_modseq(world: World) -> None:
    s = world.store
    when = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    validity, uid = await s.append(ME, "INBOX", MSG, frozenset({"\\Seen"}), when, "10.0.0.1")
    assert uid == 1
    view = await s.select(ME, "inbox")
    assert view.uid_validity == validity and view.uid_next == 2 and view.name == "INBOX"
    (info,) = view.messages
    assert info.flags == {"\\Seen"} and info.internal_date == when and info.size == len(MSG)
    assert info.modseq == view.highest_modseq == 2
    assert await s.fetch_body(ME, "INBOX", 1, "10.0.0.1") == MSG
    res = await s.store_flags(ME, "INBOX", [1], StoreMode.ADD, frozenset({"$Done"}))
    assert res.changed[0].flags == {"\\Seen", "$Done"} and res.changed[0].modseq == 3
    res = await s.store_flags(
        ME, "INBOX", [1], StoreMode.REMOVE, frozenset({"\\Seen"}), unchanged_since=2
    )
    assert res.refused == [1] and not res.changed
    res = await s.store_flags(ME, "INBOX", [1], StoreMode.REPLACE, frozenset({"\\Flagged"}))
    assert res.changed[0].flags == {"\\Flagged"}
    assert (await s.select(ME, "INBOX")).highest_modseq == 4
    assert await _actions(world.engine) == ["message.appended", "message.read"]


async def test_copy_move_expunge_are_audited(world: World) -> None:
    s = world.store
    for _ in range(3):
        await s.append(ME, "INBOX", MSG, frozenset(), None, "r")
    await s.create(ME, "Dossiers")
    copied = await s.copy(ME, "INBOX", [1, 3], "Dossiers", "r")
    assert list(copied.pairs) == [(1, 1), (3, 2)]
    moved = await s.copy(ME, "INBOX", [2], "Dossiers", "r", move=True)
    assert list(moved.pairs) == [(2, 3)]
    assert [m.uid for m in (await s.select(ME, "INBOX")).messages] == [1, 3]
    with pytest.raises(PermissionDenied) as refused:
        await s.copy(ME, "INBOX", [1], "Nowhere", "r")
    assert refused.value.code == "TRYCREATE"
    await s.store_flags(ME, "Dossiers", [1, 2], StoreMode.ADD, frozenset({"\\Deleted"}))
    assert await s.expunge(ME, "Dossiers", [2, 3], "r") == [2]
    assert await s.expunge(ME, "Dossiers", None, "r") == [1]
    assert [m.uid for m in (await s.select(ME, "Dossiers")).messages] == [3]
    assert await s.fetch_body(ME, "Dossiers", 3, "r") == MSG  # the blob outlives the rows
    actions = await _actions(world.engine)
    assert actions.count("message.copied") == 2 and actions.count("message.moved") == 1
    assert actions.count("message.expunged") == 2 and "mailbox.created" in actions


async def test_mailbox_management_and_special_use(world: World) -> None:
    s = world.store
    entries = await s.list_mailboxes(ME)
    assert [(e.name, e.special_use) for e in entries[:5]] == [
        ("INBOX", ""),
        ("Drafts", "\\Drafts"),
        ("Junk", "\\Junk"),
        ("Sent", "\\Sent"),
        ("Trash", "\\Trash"),
    ]
    assert [e.name for e in entries[5:]] == [f"Shared/{WARD}/INBOX"]
    await s.create(ME, "A")
    await s.create(ME, "A/B")
    with pytest.raises(MailboxExists):
        await s.create(ME, "A")
    await s.rename(ME, "A", "Z")
    names = [e.name for e in await s.list_mailboxes(ME)]
    assert "Z" in names and "Z/B" in names and "A" not in names
    await s.append(ME, "INBOX", MSG, frozenset(), None, "r")
    await s.rename(ME, "INBOX", "Old")  # RFC 3501 §6.3.5: INBOX's messages move, it stays
    assert len((await s.select(ME, "Old")).messages) == 1
    assert not (await s.select(ME, "INBOX")).messages
    await s.subscribe(ME, "Z", False)
    assert [e.subscribed for e in await s.list_mailboxes(ME) if e.name == "Z"] == [False]
    await s.delete(ME, "Z")
    with pytest.raises(MailboxNotFound):
        await s.select(ME, "Z")
    with pytest.raises(PermissionDenied):
        await s.delete(ME, "INBOX")


async def test_shared_mailbox_only_for_delegates(world: World) -> None:
    s = world.store
    await s.append(ME, f"Shared/{WARD}/INBOX", MSG, frozenset(), None, "r")
    view = await s.select(ME, f"Shared/{WARD}/INBOX")
    assert view.owner == WARD and len(view.messages) == 1
    stranger = Principal("someone@else.fr")
    for name in (f"Shared/{WARD}/INBOX", f"Shared/{WARD}", "Shared/../x", WARD):
        with pytest.raises(MailboxNotFound):
            await s.select(stranger, name)
    assert [e.name for e in await s.list_mailboxes(stranger)][-1] == "Trash"


async def test_commit_path_sets_modseq_and_wakes_idle(world: World) -> None:
    event = world.store.notifier.subscribe("Nurse@ehpad.mssante.fr")
    batcher = CommitBatcher(
        world.engine,
        world.vault,
        mailboxes=world.store,
        queue=OutboundQueue(3600),
        notifier=world.store.notifier,
    )
    stored = await world.vault.put(MSG)
    await batcher.commit(
        PendingMessage(
            ref="r1",
            stored=stored,
            recipients=(ME.address,),
            events=(),
            received_at=dt.datetime.now(dt.UTC),
        )
    )
    assert event.is_set()
    view = await world.store.select(ME, "INBOX")
    assert view.messages[0].modseq == view.highest_modseq == 2
    world.store.notifier.unsubscribe(ME.address, event)
    assert world.store.notifier.watchers() == 0


async def test_acl_rights_are_enforced_on_shared_mailboxes(world: World) -> None:
    s = world.store
    shared = f"Shared/{WARD}/INBOX"
    await s.append(ME, shared, MSG, frozenset(), None, "r")
    mine, entries = await s.get_acl(ME, shared)
    assert mine == "lrswipkxte" and entries == [(WARD, "lrswipkxtea")]
    with pytest.raises(PermissionDenied) as refused:
        await s.set_acl(ME, shared, ME.address, "lr")
    assert refused.value.code == "NOPERM"
    async with world.engine.begin() as conn:  # an operator grants admin, and only read
        await conn.execute(
            mailbox_acl.insert().values(owner=WARD, identifier=ME.address, rights="lra")
        )
    view = await s.select(ME, shared)
    assert view.rights == "lra" and not view.writable
    for denied in (
        s.store_flags(ME, shared, [1], StoreMode.ADD, frozenset({"\\Seen"})),
        s.append(ME, shared, MSG, frozenset(), None, "r"),
        s.expunge(ME, shared, None, "r"),
        s.create(ME, f"Shared/{WARD}/Sub"),
    ):
        with pytest.raises(PermissionDenied):
            await denied
    with pytest.raises(PermissionDenied) as not_delegate:
        await s.set_acl(ME, shared, "stranger@x.fr", "lr")
    assert not_delegate.value.code == "CANNOT"
    await s.set_acl(ME, shared, ME.address, "lrwia")
    await s.store_flags(ME, shared, [1], StoreMode.ADD, frozenset({"$Traite"}))
    assert "mailbox.acl" in await _actions(world.engine)
    await s.set_acl(ME, shared, ME.address, "")  # no l, no r: the mailbox disappears
    with pytest.raises(MailboxNotFound):
        await s.select(ME, shared)


async def test_structure_is_computed_once_and_kept(world: World) -> None:
    s = world.store
    batcher = CommitBatcher(world.engine, world.vault, mailboxes=s, queue=OutboundQueue(3600))
    stored = await world.vault.put(MSG)  # delivered by SMTP: no structure yet
    await batcher.commit(
        PendingMessage(
            ref="r2",
            stored=stored,
            recipients=(ME.address,),
            events=(),
            received_at=dt.datetime.now(dt.UTC),
        )
    )
    await s.list_mailboxes(ME)  # creates the special-use mailboxes (Trash…)
    await s.copy(ME, "INBOX", [1], "Trash", "r")
    env, tree = await s.fetch_structure(ME, "INBOX", 1, "r")
    assert env.startswith(b'(NIL "hello" ((NIL NIL "a" "b.fr"))')
    assert tree == b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 6 1 NIL NIL NIL NIL)'
    s._cache.clear()
    blobs, world.vault._store = world.vault._store, None  # type: ignore[assignment]
    assert await s.fetch_structure(ME, "Trash", 1, "r") == (env, tree)  # kept: no vault read
    world.vault._store = blobs
    _, appended = await s.append(ME, "INBOX", MSG, frozenset(), None, "r")
    assert await s.fetch_structure(ME, "INBOX", appended, "r") == (env, tree)
