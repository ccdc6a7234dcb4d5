"""OpenID Connect bearer tokens against a local test issuer serving its JWKS on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from gateway.app.services import build_services
from gateway.http.api import create_app, start_http
from tests.http.conftest import DOCTOR, DPI, Api, make_settings

ISSUER = "https://psc.test.invalid/auth/realms/esante-wallet"
AUDIENCE = "pli-api"


@dataclass
class Issuer:
    key: rsa.RSAPrivateKey
    jwks_url: str

    def token(self, *, key: rsa.RSAPrivateKey | None = None, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "f:550dc1c8:810990000027",
            "iat": now,
            "exp": now + 300,
            "email": DPI,
            "scope": "openid read send",
            **claims,
        }
        return jwt.encode(
            {k: v for k, v in body.items() if v is not None},
            key or self.key,
            algorithm="RS256",
            headers={"kid": kid},
        )


@pytest.fixture
async def oidc_api(data_dir: Path) -> AsyncIterator[tuple[Api, Issuer]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    issuer_app = FastAPI()

    @issuer_app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        return {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    async with AsyncExitStack() as stack:
        issuer_server = await start_http(issuer_app, "127.0.0.1", 0)
        stack.push_async_callback(issuer_server.close)
        jwks_url = f"http://127.0.0.1:{issuer_server.port}/jwks"
        settings = make_settings(
            data_dir, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=jwks_url
        )
        services = await build_services(settings, stack)
        server = await start_http(create_app(services, settings), "127.0.0.1", 0)
        stack.push_async_callback(server.close)
        yield Api(f"http://127.0.0.1:{server.port}", services, settings), Issuer(key, jwks_url)


async def test_oidc_tokens(oidc_api: tuple[Api, Issuer]) -> None:
    api, issuer = oidc_api
    async with api.client(issuer.token()) as c:
        r = await c.post("/v1/messages", json={"to": [DOCTOR], "body": "b"})
        assert r.status_code == 202, r.text
        assert (await c.get("/v1/messages")).status_code == 200
        assert (await c.get("/v1/audit/verify")).status_code == 403  # no audit scope
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = [
        issuer.token(key=other_key),  # not the issuer's key
        issuer.token(kid="unknown"),
        issuer.token(aud="someone-else"),
        issuer.token(iss="https://evil.invalid"),
        issuer.token(exp=int(time.time()) - 3600),
        issuer.token(exp=None),
        jwt.encode(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "x",
                "exp": int(time.time()) + 60,
                "iat": int(time.time()),
            },
            "secret-secret-secret-secret-32by",
            algorithm="HS256",
            headers={"kid": "k1"},
        ),  # algorithm confusion
        "a.b.c",
    ]
    for token in refused:
        async with api.client(token) as c:
            r = await c.get("/v1/messages")
        assert r.status_code == 401, token
    async with api.client(issuer.token(email=None, scope="audit")) as c:
        assert (await c.get("/v1/audit/verify")).status_code == 200
        assert (await c.get("/v1/messages")).status_code == 403
    from vault import audit

    actors = {
        r.actor
        async for r in audit.query(api.services.engine, audit.AuditFilter(action="api.call"))
    }
    assert "oidc:f:550dc1c8:810990000027" in actors


async def test_unreachable_jwks_is_a_temporary_failure(data_dir: Path) -> None:
    settings = make_settings(
        data_dir,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url="http://127.0.0.1:9/jwks",
    )  # discard: refused
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        server = await start_http(create_app(services, settings), "127.0.0.1", 0)
        stack.push_async_callback(server.close)
        api = Api(f"http://127.0.0.1:{server.port}", services, settings)
        async with api.client(Issuer(key, "").token()) as c:
            r = await c.get("/v1/messages")
    assert r.status_code == 503 and r.headers["retry-after"]
