"""The HTTP API application: its factory, the operational routes, and its server task.

:func:`create_app` assembles one FastAPI app from the services the composition
root built (routers, error handlers, body cap, call recorder, a metrics
registry of its own); :func:`start_http` serves it with uvicorn inside pli's
event loop (no lifespan, no signal handlers: pli's app owns both). This module
holds no state between apps and never turns an exception into text for a
client (see :mod:`gateway.http.problems`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from directory.base import Directory
from gateway.base import events
from gateway.base.config import Settings
from gateway.http.audit import audit_router
from gateway.http.auth import RateLimiter, bearer_dependency
from gateway.http.context import ApiContext, ApiServices
from gateway.http.dpi import add_send_schemas, dpi_router
from gateway.http.metrics import CONTENT_TYPE_LATEST, ApiMetrics
from gateway.http.middleware import BodyLimit, CallRecorder
from gateway.http.mtls import CertAuthority, ClientCertProtocol
from gateway.http.oidc import OidcVerifier
from gateway.http.problems import install_handlers
from gateway.mailstore.tokens import TokenService

__all__ = ["HttpServer", "ReadinessCheck", "create_app", "default_checks", "start_http"]

log = structlog.get_logger("pli.http")

ReadinessCheck = Callable[[], Awaitable[None]]  # raises (anything) when not ready
_CHECK_TIMEOUT = 3.0  # seconds per dependency: a probe must answer before the prober gives up
_PROBE_ADDRESS = "readyz-probe@pli.invalid"  # RFC 2606: never a real mailbox


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    checks: dict[str, str] = Field(examples=[{"database": "ok", "vault": "ok", "directory": "ok"}])


def default_checks(services: ApiServices) -> dict[str, ReadinessCheck]:
    """Database, vault and directory, each reached for real (not through a cache)."""

    async def database() -> None:
        async with services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def vault() -> None:
        # Metadata, key unwrapping and the store itself: one object's first chunk is read
        # (and decrypted), then the stream is dropped. An empty vault checks the metadata.
        name = await services.vault.any_object()
        if name is None:
            await services.vault.is_recorded("readyz-probe")
            return
        chunks = services.vault.stream(name)
        try:
            await anext(chunks)
        except StopAsyncIteration:
            pass  # an empty object: reaching its end is an answer too
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    async def directory() -> None:
        backend: Directory = getattr(services.directory, "backend", services.directory)
        await backend.resolve(_PROBE_ADDRESS)

    return {"database": database, "vault": vault, "directory": directory}


async def _run_checks(checks: Mapping[str, ReadinessCheck]) -> dict[str, str]:
    async def one(check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check(), _CHECK_TIMEOUT)
        except Exception:  # readiness is a yes/no per dependency, whatever the failure
            return "down"
        return "ok"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[n]) for n in names))
    return dict(zip(names, results, strict=True))


def create_app(
    services: ApiServices, settings: Settings, *, checks: Mapping[str, ReadinessCheck] | None = None
) -> FastAPI:
    """One API app over ``services``; nothing is shared with another app."""
    app = FastAPI(
        title="pli API",
        version="1",
        description="Secure health messaging gateway: DPI integration and audit. Errors are "
        "RFC 9457 problem details (application/problem+json).",
        docs_url=None,
        redoc_url=None,  # no third-party scripts served from a health gateway
    )
    ctx = ApiContext(services, settings, TokenService(services.engine), ApiMetrics(services.engine))
    oidc = OidcVerifier(settings.http) if settings.http.oidc_issuer else None
    certs = CertAuthority(services.directory) if settings.http.client_ca_file else None
    needs = bearer_dependency(ctx.tokens, RateLimiter(settings.http.rate_limit), oidc, certs)
    probes = dict(checks) if checks is not None else default_checks(services)
    install_handlers(app)

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="The process answers")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["operations"],
        responses={503: {"model": Readiness, "description": "A dependency is down"}},
        summary="Database, vault and directory answer",
    )
    async def readyz() -> JSONResponse:
        results = await _run_checks(probes)
        down = [n for n, r in results.items() if r != "ok"]
        body = Readiness(status="down: " + ", ".join(down) if down else "ready", checks=results)
        return JSONResponse(
            body.model_dump(),
            status_code=503 if down else 200,
            headers={"Retry-After": "10"} if down else None,
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
        summary="Prometheus metrics",
    )
    async def metrics() -> Response:
        return Response(await ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(dpi_router(ctx, needs))
    app.include_router(audit_router(ctx, needs))
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_send_schemas(generate())  # generate() caches the document it returns
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    # The body cap answers before anything reads the body; the recorder, outermost (added
    # last), also counts and audits the 413s it sends.
    app.add_middleware(BodyLimit, max_bytes=settings.http.max_upload)
    app.add_middleware(CallRecorder, engine=services.engine, metrics=ctx.metrics)
    return app


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # pli's run_server owns SIGINT/SIGTERM; uvicorn must not replace its handlers.
        yield


class HttpServer:
    """A running uvicorn server; :meth:`close` stops it (connections drained 5 s)."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], port: int) -> None:
        self._server = server
        self._task = task
        self.port = port

    async def close(self) -> None:
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=5)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def start_http(
    app: FastAPI, host: str, port: int, *, tls: ssl.SSLContext | None = None
) -> HttpServer:
    """Bind ``host:port`` (0 = ephemeral) and serve ``app`` as a task of this loop.

    ``tls`` is pli's own server context (TLS 1.2+, MSSanté cipher suites), used as
    is rather than uvicorn's defaults.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=15,
        timeout_graceful_shutdown=5,
        ssl_context_factory=(lambda _cfg, _default: tls) if tls else None,
        http=ClientCertProtocol,  # h11, plus the client certificate
        h11_max_incomplete_event_size=16 * 1024,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="pli-http")
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise OSError("the HTTP server stopped during start-up")
        await asyncio.sleep(0.01)
    bound = int(sock.getsockname()[1])
    log.info(events.HTTP_STARTED, port=bound)
    return HttpServer(server, task, bound)
