"""Operations: health, readiness naming what is down, metrics, problem+json shape."""

from __future__ import annotations

import warnings
from pathlib import Path

import httpx
import pytest

from gateway.app.services import build_services
from gateway.http.api import create_app, start_http
from tests.http.conftest import Api, make_settings


async def test_healthz_and_readyz(api: Api) -> None:
    async with api.client() as c:
        r = await c.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        r = await c.get("/readyz")
        assert r.status_code == 200
        assert r.json()["checks"] == {"database": "ok", "vault": "ok", "directory": "ok"}


async def test_readyz_names_what_is_down(data_dir: Path) -> None:
    from contextlib import AsyncExitStack

    async def down() -> None:
        raise ConnectionError("no route")

    async def up() -> None:
        return None

    settings = make_settings(data_dir)
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        app = create_app(
            services, settings, checks={"database": up, "vault": down, "directory": up}
        )
        server = await start_http(app, "127.0.0.1", 0)
        stack.push_async_callback(server.close)
        api = Api(f"http://127.0.0.1:{server.port}", services, settings)
        async with api.client() as c:
            r = await c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "down: vault"
    assert r.json()["checks"]["vault"] == "down"
    assert "no route" not in r.text


async def test_unknown_route_is_a_problem(api: Api) -> None:
    async with api.client() as c:
        r = await c.get("/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "urn:pli:problem:not-found"
    assert body["code"] == "not-found" and body["status"] == 404 and body["title"]


async def test_metrics_count_calls_and_read_the_database(api: Api) -> None:
    async with api.client() as c:
        await c.get("/healthz")
        await c.get("/v1/messages")  # 401
        r = await c.get("/metrics")
    assert r.status_code == 200
    text = r.text
    assert 'pli_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'route="/v1/messages",status="401"' in text
    assert "pli_messages_accepted_total" in text
    assert 'pli_outbound_queue{state="queued"}' in text


async def test_two_apps_do_not_share_metrics(api: Api) -> None:
    other = create_app(api.services, api.settings)
    server = await start_http(other, "127.0.0.1", 0)
    try:
        async with api.client() as c:
            for _ in range(3):
                await c.get("/healthz")
        async with api.client() as c:
            c.base_url = httpx.URL(f"http://127.0.0.1:{server.port}")
            text = (await c.get("/metrics")).text
    finally:
        await server.close()
    assert 'route="/healthz"' not in text


async def test_rate_limit_per_token(data_dir: Path) -> None:
    from contextlib import AsyncExitStack

    from gateway.mailstore.tokens import TokenService
    from tests.http.conftest import DPI

    settings = make_settings(data_dir, rate_limit=3)
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        server = await start_http(create_app(services, settings), "127.0.0.1", 0)
        stack.push_async_callback(server.close)
        api = Api(f"http://127.0.0.1:{server.port}", services, settings)
        tokens = TokenService(services.engine)
        first = (await tokens.create(DPI, {"read"}))[1]
        second = (await tokens.create(DPI, {"read"}))[1]
        async with api.client(first) as c:
            codes = [(await c.get("/v1/messages")).status_code for _ in range(4)]
            r = await c.get("/v1/messages")
        async with api.client(second) as c:
            other = (await c.get("/v1/messages")).status_code
    assert codes == [200, 200, 200, 429]
    assert r.json()["code"] == "rate-limited" and 1 <= int(r.headers["retry-after"]) <= 60
    assert other == 200


async def test_https_with_pli_server_context(api: Api) -> None:
    import ssl

    from gateway.base.tls import server_context

    cert, key = api.settings.tls_files()
    server = await start_http(
        create_app(api.services, api.settings), "127.0.0.1", 0, tls=server_context(cert, key)
    )
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=ctx) as c:
            r = await c.get(f"https://localhost:{server.port}/healthz")
        assert r.status_code == 200
        old = ssl.create_default_context(cafile=str(cert))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated: the point
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        async with httpx.AsyncClient(verify=old) as c:
            with pytest.raises(httpx.ConnectError):  # MSSanté: TLS 1.2 at least
                await c.get(f"https://localhost:{server.port}/healthz")
    finally:
        await server.close()


async def test_readyz_reads_the_vault_store(api: Api) -> None:
    from tests.http.conftest import DOCTOR, DPI

    async with api.client(await api.token(DPI, "send")) as c:
        assert (await c.post("/v1/messages", json={"to": [DOCTOR], "body": "b"})).status_code == 202
    store = api.settings.vault_path()
    moved = store.with_name("vault-away")
    store.rename(moved)
    try:
        async with api.client() as c:
            r = await c.get("/readyz")
    finally:
        moved.rename(store)
    assert r.status_code == 503 and r.json()["checks"]["vault"] == "down"
    assert r.json()["checks"]["database"] == "ok"
