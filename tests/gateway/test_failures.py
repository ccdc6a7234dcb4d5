"""Nothing lost: when a dependency fails, SMTP answers 4xx and leaves nothing behind.

These run the real SMTP listener in-process (aiosmtpd in the test's loop) over
real services built by the composition root, then break one dependency.
"""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.app.listeners import start_listeners
from gateway.app.services import Services, build_services
from gateway.base.config import load_settings
from gateway.mailstore.tables import message
from tests.gateway.inprocess import serving
from tests.support.datadir import DemoDataDirs
from vault import audit
from vault.tables import vault_object

FIXTURES = Path(__file__).parent.parent / "fixtures" / "directory"
NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
GERIATRICIAN = "sophie.bernard@ch-arras.mssante.fr"


@pytest.fixture
async def running(
    tmp_path: Path, demo_dirs: DemoDataDirs
) -> AsyncIterator[tuple[Services, dict[str, int]]]:
    async with serving(demo_dirs.copy(tmp_path / "var"), PLI_SMTP__REQUIRE_TLS="true") as both:
        yield both


def _send(port: int, cafile: Path) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.starttls(context=ctx)
        s.ehlo("ehpad.test")
        s.mail(NURSE)
        code, msg = s.rcpt(GERIATRICIAN)
        assert code == 250, msg
        return s.data(b"Subject: test\r\n\r\nhello\r\n")


async def _counts(services: Services) -> tuple[int, int]:
    async with services.engine.connect() as conn:
        msgs = (await conn.execute(select(func.count()).select_from(message))).scalar_one()
        objs = (await conn.execute(select(func.count()).select_from(vault_object))).scalar_one()
    return int(msgs), int(objs)


async def test_vault_unavailable_answers_451(running: tuple[Services, dict[str, int]]) -> None:
    services, ports = running
    vault_dir = services.settings.vault_path()
    shutil.rmtree(vault_dir)
    vault_dir.write_text("not a directory")  # every write under it now fails
    cafile = services.settings.tls_files()[0]
    code, msg = await asyncio.to_thread(_send, ports["smtp"], cafile)
    assert code == 451 and msg.startswith(b"4.3.0"), msg
    assert await _counts(services) == (0, 0)
    assert (await audit.verify(services.engine)).ok


async def test_database_failure_answers_451_and_removes_blob(
    running: tuple[Services, dict[str, int]],
) -> None:
    services, ports = running
    cafile = services.settings.tls_files()[0]
    async with services.engine.begin() as conn:  # a commit-time failure: the table is gone
        await conn.exec_driver_sql("ALTER TABLE message RENAME TO message_gone")
    code, msg = await asyncio.to_thread(_send, ports["smtp"], cafile)
    assert code == 451, msg
    blobs = [p for p in services.settings.vault_path().rglob("*") if p.is_file()]
    assert blobs == []  # the encrypted body written before the failed commit was removed
    async with services.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE message_gone RENAME TO message")
    assert await _counts(services) == (0, 0)
    assert (await audit.verify(services.engine)).ok


async def test_directory_unavailable_answers_451_443(
    running: tuple[Services, dict[str, int]],
) -> None:
    services, ports = running
    cafile = services.settings.tls_files()[0]
    async with services.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE directory_entry RENAME TO directory_gone")

    def rcpt() -> tuple[int, bytes]:
        ctx = ssl.create_default_context(cafile=str(cafile))
        ctx.check_hostname = False
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as s:
            s.starttls(context=ctx)
            s.ehlo("ehpad.test")
            code, msg = s.mail(NURSE)  # a listed sender is checked too
            if code != 250:
                return code, msg
            return s.rcpt(GERIATRICIAN)

    code, msg = await asyncio.to_thread(rcpt)
    assert code == 451 and msg.startswith(b"4.4.3"), msg


async def test_require_tls_refuses_mail_before_starttls(
    running: tuple[Services, dict[str, int]],
) -> None:
    _, ports = running

    def plain() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as s:
            s.ehlo("x.test")
            return s.mail(NURSE)

    code, _ = await asyncio.to_thread(plain)
    assert code == 530


async def test_ldap_directory_down_answers_451_443_then_recovers(
    tmp_path: Path, demo_dirs: DemoDataDirs
) -> None:
    from directory.ldap import LdapConfig, LdapDirectory
    from directory.ldap_import import import_extraction_ldap
    from tests.support.slapd import ROOT_DN, ROOT_PW, Slapd, new_subtree

    server = Slapd(tmp_path / "slapd")
    server.setup()
    server.start()
    try:
        base = new_subtree(server)
        loader = LdapDirectory(
            LdapConfig(url=server.url, base_dn=base, bind_dn=ROOT_DN, bind_password=ROOT_PW)
        )
        await import_extraction_ldap(loader, FIXTURES / "extraction-sample.txt")
        await loader.aclose()
        data = demo_dirs.copy(tmp_path / "var")
        env = {
            "PLI_SMTP__MTA_PORT": "0",
            "PLI_IMAP__PORT": "0",
            "PLI_HTTP__PORT": "0",
            "PLI_SMTP__SUBMISSION_PORT": "0",
            "PLI_SMTP__SUBMISSION_TLS_PORT": "0",
            "PLI_DIRECTORY__BACKEND": "ldap",
            "PLI_DIRECTORY__LDAP__URL": server.url,
            "PLI_DIRECTORY__LDAP__BASE_DN": base,
            "PLI_DIRECTORY__LDAP__BIND_DN": ROOT_DN,
            "PLI_DIRECTORY__LDAP__BIND_PASSWORD": ROOT_PW,
            "PLI_DIRECTORY__LDAP__TIMEOUT": "2",
        }
        settings = load_settings(None, data, environ=env)
        async with AsyncExitStack() as stack:
            services = await build_services(settings, stack)
            ports = await start_listeners(services, stack)
            cafile = settings.tls_files()[0]
            server.stop()

            def envelope() -> tuple[int, bytes]:
                ctx = ssl.create_default_context(cafile=str(cafile))
                ctx.check_hostname = False
                with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as s:
                    s.starttls(context=ctx)
                    s.ehlo("ehpad.test")
                    code, msg = s.mail(NURSE)
                    if code != 250:
                        return code, msg
                    return s.rcpt(GERIATRICIAN)

            code, msg = await asyncio.to_thread(envelope)
            assert code == 451 and msg.startswith(b"4.4.3"), msg  # never 5xx, never accepted
            server.start()
            code, msg = await asyncio.to_thread(_send, ports["smtp"], cafile)
            assert code == 250, msg
    finally:
        server.stop()


async def test_s3_vault_down_answers_451_and_leaves_nothing(
    tmp_path: Path, demo_dirs: DemoDataDirs
) -> None:
    from tests.support.moto_s3 import MotoS3Server

    server = MotoS3Server()
    server.start()
    try:
        data = demo_dirs.copy(tmp_path / "var")
        env = {
            "PLI_SMTP__MTA_PORT": "0",
            "PLI_IMAP__PORT": "0",
            "PLI_HTTP__PORT": "0",
            "PLI_SMTP__SUBMISSION_PORT": "0",
            "PLI_SMTP__SUBMISSION_TLS_PORT": "0",
            "PLI_VAULT__BACKEND": "s3",
            "PLI_VAULT__S3__ENDPOINT": server.endpoint,
            "PLI_VAULT__S3__SECURE": "false",
            "PLI_VAULT__S3__ACCESS_KEY": server.access_key,
            "PLI_VAULT__S3__SECRET_KEY": server.secret_key,
            "PLI_VAULT__S3__REGION": "us-east-1",
        }
        settings = load_settings(None, data, environ=env)
        async with AsyncExitStack() as stack:
            services = await build_services(settings, stack)
            ports = await start_listeners(services, stack)
            cafile = settings.tls_files()[0]
            code, msg = await asyncio.to_thread(_send, ports["smtp"], cafile)
            assert code == 250, msg
            # The body went to S3, not to the data directory.
            assert not [p for p in (data / "vault").rglob("*") if p.is_file()]
            server.stop()
            code, msg = await asyncio.to_thread(_send, ports["smtp"], cafile)
            assert code == 451 and msg.startswith(b"4."), msg  # never 250, never 5xx
            # nothing half-recorded: one message, its body and its notarisation receipt
            assert await _counts(services) == (1, 2)
            assert (await audit.verify(services.engine)).ok
    finally:
        server.stop()
