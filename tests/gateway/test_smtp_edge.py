"""Load balancers (PROXY protocol) and login throttling, on real listeners in the test's loop."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from gateway.app.datadir import read_demo_accounts
from gateway.app.listeners import start_listeners
from gateway.app.services import Services, build_services
from gateway.base.config import load_settings
from tests.support.datadir import DemoDataDirs
from vault import audit

NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
GERIATRICIAN = "sophie.bernard@ch-arras.mssante.fr"


async def _serve(data: Path, stack: AsyncExitStack, **env: str) -> tuple[Services, dict[str, int]]:
    base = {
        "PLI_SMTP__MTA_PORT": "0",
        "PLI_IMAP__PORT": "0",
        "PLI_HTTP__PORT": "0",
        "PLI_SMTP__SUBMISSION_PORT": "0",
        "PLI_SMTP__SUBMISSION_TLS_PORT": "0",
    }
    settings = load_settings(None, data, environ={**base, **env})
    services = await build_services(settings, stack)
    return services, await start_listeners(services, stack)


@pytest.fixture
async def behind_proxy(
    tmp_path: Path, demo_dirs: DemoDataDirs
) -> AsyncIterator[tuple[Services, dict[str, int]]]:
    async with AsyncExitStack() as stack:
        yield await _serve(
            demo_dirs.copy(tmp_path / "var"), stack, PLI_SMTP__PROXY_PROTOCOL_FROM="127.0.0.0/8"
        )


def _proxied(port: int, header: bytes, cafile: Path) -> tuple[int, bytes]:
    """Speak like HAProxy: PROXY header first, then SMTP on the same socket."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(header)
    s = smtplib.SMTP(timeout=10)
    s.sock, s.file = sock, None  # as connect() would have set them
    s._host = "localhost"  # type: ignore[attr-defined]  # private, absent from typeshed
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
    behind_proxy: tuple[Services, dict[str, int]],
) -> None:
    services, ports = behind_proxy
    cafile = services.settings.tls_files()[0]
    header = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 25\r\n"
    code, msg = await asyncio.to_thread(_proxied, ports["smtp"], header, cafile)
    assert code == 250, msg
    events = [
        e async for e in audit.query(services.engine, audit.AuditFilter(action="message.accepted"))
    ]
    assert events[-1].remote == "203.0.113.7"


async def test_without_a_proxy_header_the_connection_is_closed(
    behind_proxy: tuple[Services, dict[str, int]],
) -> None:
    _, ports = behind_proxy

    def plain() -> None:
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as s:
            s.ehlo("direct.test")

    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError)):
        await asyncio.to_thread(plain)


async def test_proxy_header_from_an_untrusted_address_is_refused(
    tmp_path: Path, demo_dirs: DemoDataDirs
) -> None:
    async with AsyncExitStack() as stack:
        services, ports = await _serve(
            demo_dirs.copy(tmp_path / "var"), stack, PLI_SMTP__PROXY_PROTOCOL_FROM="192.0.2.0/24"
        )
        header = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 25\r\n"
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError, AssertionError)):
            await asyncio.to_thread(
                _proxied, ports["smtp"], header, services.settings.tls_files()[0]
            )


async def test_bad_proxy_setting_names_the_key(tmp_path: Path) -> None:
    from gateway.base.errors import ConfigError

    with pytest.raises(ConfigError, match=r"smtp\.proxy_protocol_from"):
        load_settings(None, tmp_path, environ={"PLI_SMTP__PROXY_PROTOCOL_FROM": "not-an-ip"})


def _plain(user: str, secret: str) -> str:
    import base64

    return base64.b64encode(f"\0{user}\0{secret}".encode()).decode()


async def test_failed_logins_are_throttled_per_address(
    tmp_path: Path, demo_dirs: DemoDataDirs
) -> None:
    async with AsyncExitStack() as stack:
        services, ports = await _serve(demo_dirs.copy(tmp_path / "var"), stack)
        password = dict(
            (a.address, a.password) for a in read_demo_accounts(services.settings.data_dir)
        )[GERIATRICIAN]
        cafile = services.settings.tls_files()[0]

        def attempt(secret: str) -> int:
            ctx = ssl.create_default_context(cafile=str(cafile))
            ctx.check_hostname = False
            with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=30) as s:
                s.starttls(context=ctx)
                s.ehlo("client.test")
                # One AUTH PLAIN each (login() would try LOGIN too after a failure).
                code, _ = s.docmd("AUTH", "PLAIN " + _plain(GERIATRICIAN, secret))
                return code

        # The five failures on parallel connections (as a guesser would; each failure
        # answers after a second), the right password once they have all been refused.
        codes = list(
            await asyncio.gather(
                *(asyncio.to_thread(attempt, "wrong-password-1") for _ in range(5))
            )
        )
        codes.append(await asyncio.to_thread(attempt, password))
        # Five failures, then even the right password is refused for a while (454, temporary).
        assert codes == [535] * 5 + [454]
        events = [e async for e in audit.query(services.engine, audit.AuditFilter(action="login"))]
        assert [e.reason for e in events][-1] == "throttled"


def _ca_and_client(tmp_path: Path, domain: str) -> tuple[Path, Path, Path]:
    """A CA (the trusted operators' PKI) and a client certificate it issued for ``domain``."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test operators CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "c.key"
    ca_file.write_bytes(ca.public_bytes(pem))
    cert_file.write_bytes(cert.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


async def test_mutual_tls_checks_the_sender_domain(tmp_path: Path, demo_dirs: DemoDataDirs) -> None:
    ca, cert, key = _ca_and_client(tmp_path, "ehpad-les-tilleuls.mssante.fr")
    async with AsyncExitStack() as stack:
        services, ports = await _serve(
            demo_dirs.copy(tmp_path / "var"),
            stack,
            PLI_SMTP__CLIENT_CA_FILE=str(ca),
            PLI_SMTP__REQUIRE_CLIENT_CERT="true",
        )
        cafile = services.settings.tls_files()[0]

        def mail_from(sender: str, with_cert: bool) -> tuple[int, bytes]:
            ctx = ssl.create_default_context(cafile=str(cafile))
            ctx.check_hostname = False
            if with_cert:
                ctx.load_cert_chain(str(cert), str(key))
            with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as s:
                s.starttls(context=ctx)
                s.ehlo("peer.test")
                return s.mail(sender)

        assert (await asyncio.to_thread(mail_from, NURSE, True))[0] == 250
        code, msg = await asyncio.to_thread(mail_from, GERIATRICIAN, True)
        assert code == 550 and b"does not match the client certificate" in msg
        code, msg = await asyncio.to_thread(mail_from, NURSE, False)
        assert code == 530 and msg.startswith(b"5.7.0"), msg
        events = [
            e async for e in audit.query(services.engine, audit.AuditFilter(action="smtp.mail"))
        ]
        assert {e.reason for e in events} == {"client-certificate"}


async def test_header_bombs_are_refused(tmp_path: Path, demo_dirs: DemoDataDirs) -> None:
    async with AsyncExitStack() as stack:
        _, ports = await _serve(demo_dirs.copy(tmp_path / "var"), stack)

        def send(head: bytes) -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as s:
                s.ehlo("peer.test")
                s.mail(NURSE)
                s.rcpt(GERIATRICIAN)
                return s.data(head + b"\r\nbody\r\n")

        many = b"".join(b"X-F%d: v\r\n" % i for i in range(1500))
        code, msg = await asyncio.to_thread(send, many)
        assert code == 552 and b"more than 1000 header fields" in msg
        big = b"Subject: " + b"a" * 900 + b"".join(b"\r\n " + b"b" * 900 for _ in range(400))
        code, msg = await asyncio.to_thread(send, big + b"\r\n")
        assert code == 552 and b"header section larger" in msg
        code, _ = await asyncio.to_thread(send, b"Subject: fine\r\n")
        assert code == 250
