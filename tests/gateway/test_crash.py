"""Nothing lost: kill -9 pli in the middle of an SMTP load, restart, and count.

Every message that got a 250 must be in its mailbox exactly once, readable
and intact (vault integrity check on read), and the audit chain must verify.
A message committed just before the kill may be present without its 250 ever
reaching the client: at-least-once, never lost.
"""

from __future__ import annotations

import asyncio
import re
import signal
import smtplib
import ssl
import threading
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.app.services import build_services
from gateway.base.config import load_settings
from gateway.core.ports import INBOX, Principal
from gateway.mailstore.tables import mailbox, message
from tests.gateway.running import start_pli, stop_pli
from tests.support.datadir import DemoDataDirs
from vault import audit

pytestmark = pytest.mark.slow  # end to end: a real `pli serve` process

RCPT = "urgences@ch-arras.mssante.fr"
SENDER = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
_ID = re.compile(rb"id=([0-9a-f]{16})")


def _load(port: int, cafile: Path, acked: list[str], stop: threading.Event) -> None:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.starttls(context=ctx)
            s.ehlo("crash.test")
            i = 0
            while not stop.is_set():
                s.mail(SENDER)
                s.rcpt(RCPT)
                code, msg = s.data(b"Subject: c\r\n\r\n" + (b"z" * 76 + b"\r\n") * 260)
                if code == 250 and (m := _ID.search(msg)):
                    acked.append(m.group(1).decode())
                i += 1
    except (OSError, smtplib.SMTPException):
        return  # the server was killed under us: expected


def test_kill_9_loses_no_acknowledged_message(tmp_path: Path, demo_dirs: DemoDataDirs) -> None:
    pli = start_pli(demo_dirs.copy(tmp_path / "var"))
    acked: list[str] = []
    stop = threading.Event()
    workers = [
        threading.Thread(target=_load, args=(pli.ports["smtp"], pli.cafile, acked, stop))
        for _ in range(4)
    ]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 30
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    pli.proc.send_signal(signal.SIGKILL)  # mid-load: some DATA in flight
    pli.proc.wait(timeout=10)
    stop.set()
    for w in workers:
        w.join(timeout=30)
    assert len(acked) >= 40, "the load never got going"

    restarted = start_pli(tmp_path / "var")  # recovers the WAL, migrates, serves again
    try:
        assert restarted.cli("audit", "verify").returncode == 0
        asyncio.run(_check(tmp_path / "var", acked))
    finally:
        stop_pli(restarted)


async def _check(data_dir: Path, acked: list[str]) -> None:
    settings = load_settings(None, data_dir, environ={})
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        async with services.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(message.c.msg_ref, message.c.uid)
                    .join(mailbox, mailbox.c.id == message.c.mailbox_id)
                    .where(mailbox.c.owner == RCPT)
                )
            ).all()
        counts = Counter(r.msg_ref for r in rows)
        assert all(n == 1 for n in counts.values()), "a message was delivered twice"
        missing = [ref for ref in acked if ref not in counts]
        assert not missing, f"{len(missing)} acknowledged messages lost"
        principal = Principal(RCPT)
        view = await services.mailstore.select(principal, INBOX)
        assert len(view.messages) == len(rows)
        for info in view.messages:  # every stored body decrypts and passes its digest
            body = await services.mailstore.fetch_body(principal, INBOX, info.uid, "test")
            assert body.endswith((b"z" * 76 + b"\r\n") * 260)
        report = await audit.verify(services.engine)
        assert report.ok, report
