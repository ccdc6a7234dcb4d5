"""A failed commit leaves no S/MIME evidence behind: original, receipts and outbound copy
are discarded with the body (in-process listeners over the composition root's services)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app.services import Services
from gateway.smime import PkiPaths, encrypt, load_certificate
from tests.gateway.inprocess import serving
from tests.support.datadir import DemoDataDirs

URGENCES = "urgences@ch-arras.mssante.fr"
GP = "jean.petit@medecin.mssante.fr"


@pytest.fixture
async def running(
    tmp_path: Path, demo_dirs: DemoDataDirs
) -> AsyncIterator[tuple[Services, dict[str, int]]]:
    async with serving(demo_dirs.copy(tmp_path / "var")) as both:
        yield both


def _send(port: int, cafile: Path, message: bytes) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.starttls(context=ctx)
        s.ehlo("operator.test")
        s.mail(GP)
        code, msg = s.rcpt(URGENCES)
        assert code == 250, msg
        return s.data(message)


async def test_failed_commit_discards_original_and_receipts(
    running: tuple[Services, dict[str, int]],
) -> None:
    services, ports = running
    cert = load_certificate(PkiPaths(services.settings.pki_dir()).mailbox(URGENCES)[0])
    entity = encrypt(
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\nJVBERi0xLjQK\r\n",
        [cert],
    )
    message = f"From: {GP}\r\nTo: {URGENCES}\r\nSubject: t\r\nMIME-Version: 1.0\r\n".encode()
    async with services.engine.begin() as conn:  # a commit-time failure: the table is gone
        await conn.exec_driver_sql("ALTER TABLE message_evidence RENAME TO evidence_gone")
    cafile = services.settings.tls_files()[0]
    code, msg = await asyncio.to_thread(_send, ports["smtp"], cafile, message + entity)
    assert code == 451 and msg.startswith(b"4.3.0"), msg
    blobs = [p for p in services.settings.vault_path().rglob("*") if p.is_file()]
    assert blobs == []  # body, original, message and attachment receipts: all removed
    async with services.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE evidence_gone RENAME TO message_evidence")
    code, msg = await asyncio.to_thread(_send, ports["smtp"], cafile, message + entity)
    assert code == 250, msg
    blobs = [p for p in services.settings.vault_path().rglob("*") if p.is_file()]
    assert len(blobs) == 5  # presented, original, receipt, original's receipt, part receipt
