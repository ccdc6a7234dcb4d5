"""Load balancers (PROXY protocol) and login throttling, on real listeners in the test's loop."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from gateway.app import Services, build_services, start_listeners
from gateway.config import load_settings
from gateway.datadir import init_data_dir, read_demo_accounts
from vault import audit

NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
GERIATRICIAN = "sophie.bernard@ch-arras.mssante.fr"


async def _serve(tmp_path: Path, stack: AsyncExitStack,
                 **env: str) -> tuple[Services, dict[str, int]]:
    data = tmp_path / "var"
    await init_data_dir(data, demo=True)
    base = {"PLI_SMTP__MTA_PORT": "0", "PLI_IMAP__PORT": "0", "PLI_HTTP__PORT": "0",
            "PLI_SMTP__SUBMISSION_PORT": "0", "PLI_SMTP__SUBMISSION_TLS_PORT": "0"}
    settings = load_settings(None, data, environ={**base, **env})
    services = await build_services(settings, stack)
    return services, await start_listeners(services, stack)


@pytest.fixture
async def behind_proxy(tmp_path: Path) -> AsyncIterator[tuple[Services, dict[str, int]]]:
    async with AsyncExitStack() as stack:
        yield await _serve(tmp_path, stack, PLI_SMTP__PROXY_PROTOCOL_FROM="127.0.0.0/8")


def _proxied(port: int, header: bytes, cafile: Path) -> tuple[int, bytes]:
    """Speak like HAProxy: PROXY header first, then SMTP on the same socket."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(header)
    s = smtplib.SMTP(timeout=10)
    s.sock, s.file, s._host = sock, None, "localhost"  # as connect() would have set them
    code, msg = s.getreply()
    assert code == 220, msg
    s.ehlo("lb.test")
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    s.starttls(context=ctx)
    s.ehlo("lb.test")
    s.mail(NURSE)
    s.rcpt(GERIATRICIAN)
    result = s.data(b"Subject: via LB\r\n\r\nx\r\n")
    s.quit()
    return result


async def test_proxy_v1_from_a_trusted_balancer_gives_the_client_address(
        behind_proxy: tuple[Services, dict[str, int]]) -> None:
    services, ports = behind_proxy
    cafile = services.settings.tls_files()[0]
    header = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 25\r\n"
    code, msg = await asyncio.to_thread(_proxied, ports["smtp"], header, cafile)
    assert code == 250, msg
    events = [e async for e in audit.query(services.engine,
                                           audit.AuditFilter(action="message.accepted"))]
    assert events[-1].remote == "203.0.113.7"


async def test_without_a_proxy_header_the_connection_is_closed(
        behind_proxy: tuple[Services, dict[str, int]]) -> None:
    _, ports = behind_proxy

    def plain() -> None:
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as s:
            s.ehlo("direct.test")

    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError)):
        await asyncio.to_thread(plain)


async def test_proxy_header_from_an_untrusted_address_is_refused(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        services, ports = await _serve(tmp_path, stack,
                                       PLI_SMTP__PROXY_PROTOCOL_FROM="192.0.2.0/24")
        header = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 25\r\n"
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError, AssertionError)):
            await asyncio.to_thread(_proxied, ports["smtp"], header,
                                    services.settings.tls_files()[0])


async def test_bad_proxy_setting_names_the_key(tmp_path: Path) -> None:
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match=r"smtp\.proxy_protocol_from"):
        load_settings(None, tmp_path, environ={"PLI_SMTP__PROXY_PROTOCOL_FROM": "not-an-ip"})


def _plain(user: str, secret: str) -> str:
    import base64

    return base64.b64encode(f"\0{user}\0{secret}".encode()).decode()


async def test_failed_logins_are_throttled_per_address(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        services, ports = await _serve(tmp_path, stack)
        password = dict((a.address, a.password) for a in
                        read_demo_accounts(services.settings.data_dir))[GERIATRICIAN]
        cafile = services.settings.tls_files()[0]

        def attempts() -> list[int]:
            ctx = ssl.create_default_context(cafile=str(cafile))
            ctx.check_hostname = False
            codes = []
            for secret in ["wrong-password-1"] * 5 + [password]:
                with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=30) as s:
                    s.starttls(context=ctx)
                    s.ehlo("client.test")
                    # One AUTH PLAIN each (login() would try LOGIN too after a failure).
                    code, _ = s.docmd("AUTH", "PLAIN " + _plain(GERIATRICIAN, secret))
                    codes.append(code)
            return codes

        codes = await asyncio.to_thread(attempts)
        # Five failures, then even the right password is refused for a while (454, temporary).
        assert codes == [535] * 5 + [454]
        events = [e async for e in audit.query(services.engine,
                                               audit.AuditFilter(action="login"))]
        assert [e.reason for e in events][-1] == "throttled"
