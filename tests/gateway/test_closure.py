"""Closing mailboxes unused for a year: found by the audit trail, closed on the record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.errors import AccountNotFound
from gateway.mailstore import closure
from gateway.mailstore.store import ensure_mailbox
from gateway.mailstore.tables import account, mailbox, mailbox_acl, message
from tests.support.cli import pli_in_process as pli
from tests.support.datadir import DemoDataDirs
from vault import audit

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(days=400)


async def _account(engine: AsyncEngine, address: str, changed: dt.datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(account).values(address=address, password_hash="x", updated_at=changed)
        )


async def _login(engine: AsyncEngine, address: str, when: dt.datetime, ok: bool = True) -> None:
    async with engine.begin() as conn:
        await audit.append(
            conn,
            audit.AuditEvent(
                action="login", actor=address, mailbox=address, result="ok" if ok else "fail"
            ),
            now=when,
        )


async def test_inactive_means_no_successful_login_and_no_change(engine: AsyncEngine) -> None:
    await _account(engine, "idle@ehpad.fr", OLD)  # logged in 400 days ago, then nothing
    await _login(engine, "idle@ehpad.fr", OLD)
    await _login(engine, "idle@ehpad.fr", NOW - dt.timedelta(days=3), ok=False)  # failures
    await _account(engine, "never@ehpad.fr", OLD)  # never logged in
    await _account(engine, "active@ehpad.fr", OLD)
    await _login(engine, "active@ehpad.fr", NOW - dt.timedelta(days=10))
    await _account(engine, "new@ehpad.fr", NOW - dt.timedelta(days=5))  # created recently
    found = await closure.inactive_mailboxes(engine, 365, now=NOW)
    assert [(f.address, f.last_login is None) for f in found] == [
        ("idle@ehpad.fr", False),
        ("never@ehpad.fr", True),
    ]


async def test_close_removes_account_mailboxes_messages_and_rights(engine: AsyncEngine) -> None:
    await _account(engine, "idle@ehpad.fr", OLD)
    await _account(engine, "other@ehpad.fr", OLD)
    async with engine.begin() as conn:
        box = await ensure_mailbox(conn, "idle@ehpad.fr")
        kept = await ensure_mailbox(conn, "other@ehpad.fr")
        for i, mid in enumerate((box, box, kept)):
            await conn.execute(
                insert(message).values(
                    msg_ref=f"m{i}",
                    mailbox_id=mid,
                    uid=i + 1,
                    blob=f"{i:032x}",
                    size=1,
                    internal_date=NOW,
                    flags="",
                )
            )
        await conn.execute(
            insert(mailbox_acl).values(
                owner="other@ehpad.fr", identifier="idle@ehpad.fr", rights="lr"
            )
        )
    closed = await closure.close_mailbox(
        engine, "IDLE@ehpad.fr", actor="cli:op", reason="unused-1y"
    )
    assert (closed.mailboxes, closed.messages) == (1, 2)
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(message))).scalar() == 1
        owners = set((await conn.execute(select(mailbox.c.owner))).scalars())
        assert owners == {"other@ehpad.fr"}
        assert (await conn.execute(select(func.count()).select_from(mailbox_acl))).scalar() == 0
    [event] = [r async for r in audit.query(engine, audit.AuditFilter(action="mailbox.closed"))]
    assert (event.mailbox, event.reason, event.detail) == (
        "idle@ehpad.fr",
        "unused-1y",
        {"mailboxes": 1, "messages": 2},
    )
    with pytest.raises(AccountNotFound, match=r"no mailbox account idle@ehpad\.fr"):
        await closure.close_mailbox(engine, "idle@ehpad.fr", actor="cli:op", reason="again")


def test_cli_lists_then_closes(tmp_path: Path, demo_dirs: DemoDataDirs) -> None:
    data = ["--data-dir", str(demo_dirs.copy(tmp_path / "var"))]
    listed = pli("mailbox", "inactive", "--days", "0", *data)
    assert listed.returncode == 0 and "cabinet.petit@medecin.mssante.fr" in listed.stdout
    token = pli(
        "token", "create", "--mailbox", "cabinet.petit@medecin.mssante.fr", "--scope", "send", *data
    )
    assert token.returncode == 0, token.stderr
    closed = pli(
        "mailbox", "close", "cabinet.petit@medecin.mssante.fr", "--reason", "unused-1y", *data
    )
    assert closed.returncode == 0 and closed.stdout.startswith("closed cabinet.petit@")
    assert "1 API tokens revoked" in closed.stdout  # it can no longer act for the mailbox
    again = pli("mailbox", "close", "cabinet.petit@medecin.mssante.fr", "--reason", "x", *data)
    assert again.returncode == 1 and "no mailbox account" in again.stderr
    trail = pli("audit", "query", "--action", "mailbox.closed", "--format", "csv", *data)
    assert "cabinet.petit@medecin.mssante.fr" in trail.stdout
