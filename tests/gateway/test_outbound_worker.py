"""The outbound worker in-process against an unreachable operator: delay DSN, then expiry."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import select

from gateway.app.services import build_services
from gateway.base.config import load_settings
from gateway.core.model import Origin
from gateway.mailstore.tables import mailbox, message
from gateway.outbound import store
from gateway.outbound.worker import OutboundWorker
from tests.support.datadir import DemoDataDirs
from tests.support.servers import free_port

NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
SOPHIE = "sophie.bernard@ch-arras.mssante.fr"


async def test_delay_then_expiry_each_tell_the_sender_once(
    tmp_path: Path, demo_dirs: DemoDataDirs
) -> None:
    data = demo_dirs.copy(tmp_path / "var", domains=("ehpad-les-tilleuls.mssante.fr",))
    port = free_port()
    settings = load_settings(
        None,
        data,
        overrides={
            "queue": {
                "routes": {"ch-arras.mssante.fr": f"127.0.0.1:{port}"},
                "delay_warning": 0.2,
                "retry_base": 0.1,
                "retry_max": 0.1,
                "max_age": 2.0,
            }
        },
    )
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        worker = OutboundWorker(
            services.engine,
            services.vault,
            services.ingest,
            services.queue,
            settings.queue,
            settings.hostname,
            "test-worker",
        )
        delivery = services.ingest.begin(Origin.submission("t", "127.0.0.1", NURSE, tls="TLSv1.3"))
        assert (await delivery.add_sender(NURSE)).accepted
        assert (await delivery.add_recipient(SOPHIE)).accepted
        assert delivery.remote == [SOPHIE] and delivery.recipients == []
        await delivery.put_body(b"Subject: dossier\r\nMessage-ID: <q1@ehpad.test>\r\n\r\nx\r\n")
        await delivery.commit()

        async def dsns() -> list[bytearray]:
            async with services.engine.connect() as conn:
                names = (
                    (
                        await conn.execute(
                            select(message.c.blob)
                            .join(mailbox, message.c.mailbox_id == mailbox.c.id)
                            .where(mailbox.c.owner == NURSE, mailbox.c.name == "INBOX")
                        )
                    )
                    .scalars()
                    .all()
                )
            return [await services.vault.get(n) for n in names]

        await worker.run_once()  # refused connection: deferred, too early for a warning
        (entry,) = await store.list_entries(services.engine)
        assert entry.state == store.QUEUED and entry.attempts == 1
        assert "4.4.1" in entry.last_reply and await dsns() == []
        await asyncio.sleep(0.3)
        await worker.run_once()  # past delay_warning: one "delayed" DSN
        await asyncio.sleep(0.2)
        await worker.run_once()  # still failing: no second warning
        delayed = await dsns()
        assert len(delayed) == 1 and b"Action: delayed" in delayed[0]
        assert b"<q1@ehpad.test>" in delayed[0]
        await asyncio.sleep(2.0)
        await worker.run_once()  # past max_age: bounced with 4.4.7
        (entry,) = await store.list_entries(services.engine)
        assert entry.state == store.FAILED and "4.4.7" in entry.last_reply
        final = await dsns()
        assert len(final) == 2 and any(
            b"Action: failed" in d and b"Status: 4.4.7" in d for d in final
        )
