"""Mutual TLS: a client certificate naming a shared mailbox authenticates it, without a token."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.app.services import build_services
from gateway.base.tls import server_context
from gateway.http.api import create_app, start_http
from tests.http.conftest import DOCTOR, DPI, make_settings


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    email: str = "",
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if issuer is None:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        b = b.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        b = b.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@dataclass
class Mtls:
    base: str
    server_ca: Path
    client: dict[str, tuple[str, str]]


@pytest.fixture
async def mtls(data_dir: Path, tmp_path: Path) -> AsyncIterator[Mtls]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("pli test client CA", ca_key, None, ca_key)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    clients = {}
    for mailbox in (DPI, DOCTOR):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(mailbox, key, ca, ca_key, email=mailbox)
        crt, pem = tmp_path / f"{mailbox}.crt", tmp_path / f"{mailbox}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        clients[mailbox] = (str(crt), str(pem))
    settings = make_settings(data_dir, tls=True, client_ca_file=str(tmp_path / "ca.pem"))
    server_cert, server_key = settings.tls_files()
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        server = await start_http(
            create_app(services, settings),
            "127.0.0.1",
            0,
            tls=server_context(server_cert, server_key, tmp_path / "ca.pem"),
        )
        stack.push_async_callback(server.close)
        yield Mtls(f"https://localhost:{server.port}", server_cert, clients)


def _client(m: Mtls, mailbox: str | None) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=str(m.server_ca))
    if mailbox:
        ctx.load_cert_chain(*m.client[mailbox])
    return httpx.AsyncClient(base_url=m.base, verify=ctx, timeout=30)


async def test_client_certificate_authenticates_a_shared_mailbox(mtls: Mtls) -> None:
    async with _client(mtls, DPI) as c:
        assert (await c.get("/v1/messages")).status_code == 200
        r = await c.post("/v1/messages", json={"to": [DOCTOR], "body": "b"})
        assert r.status_code == 202, r.text
        assert (await c.get("/v1/audit/verify")).status_code == 403  # never the audit scope
    async with _client(mtls, None) as c:
        assert (await c.get("/v1/messages")).status_code == 401
    async with _client(mtls, DOCTOR) as c:  # a person's mailbox: not for software
        assert (await c.get("/v1/messages")).status_code == 401
