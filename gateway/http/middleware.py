"""ASGI middleware of the API: the request body cap, and the recorder of every call.

:class:`BodyLimit` refuses a body over ``max_bytes`` with a 413 problem, from
``Content-Length`` before reading anything or while the body streams in
(chunked uploads), whatever the route would have answered. :class:`CallRecorder`
counts and times every call for ``/metrics`` and appends one audit entry per
``/v1`` call before its answer leaves (the token as actor, route template,
status; never the query, the body or a header value), failed
authentications and refused uploads included.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.base import events
from gateway.http.auth import CALLER_KEY, FAILURE_KEY, Caller
from gateway.http.metrics import ApiMetrics
from gateway.http.problems import problem_response
from vault import audit

__all__ = ["MSG_KEY", "BodyLimit", "CallRecorder"]

MSG_KEY = "pli_msg_id"  # request.state: the message a call concerned, for the audit entry
log = structlog.get_logger("pli.http")


def _route(scope: Scope) -> str:
    """The matched route's template (bounded label set), never the concrete path."""
    return getattr(scope.get("route"), "path_format", None) or "unmatched"


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"The body exceeds {self.max_bytes} bytes"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await problem_response(
                        "payload-too-large", detail, instance=scope.get("path", "")
                    )(scope, receive, send)
                    return
        seen = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal seen, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise _TooLarge()
            return msg

        async def guarded(msg: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the route made of the interruption, the answer is 413
            started = True
            await send(msg)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counted, guarded)
        if exceeded and not started:
            await problem_response("payload-too-large", detail, instance=scope.get("path", ""))(
                scope, receive, send
            )


class CallRecorder:
    def __init__(self, app: ASGIApp, engine: AsyncEngine, metrics: ApiMetrics) -> None:
        self.app = app
        self.engine = engine
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        audited = not scope.get("path", "").startswith("/v1/")
        start = time.perf_counter()

        async def capture(msg: Message) -> None:
            nonlocal status, audited
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
                if not audited:
                    # Recorded before the first byte leaves: a client that got an answer
                    # can rely on finding its call in the trail.
                    audited = True
                    await self._audit(scope, _route(scope), status)
            await send(msg)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = _route(scope)
            self.metrics.observe(
                route, scope.get("method", ""), status, time.perf_counter() - start
            )
            if not audited:  # the app failed before answering
                await self._audit(scope, route, status)

    async def _audit(self, scope: Scope, route: str, status: int) -> None:
        state: dict[str, Any] = scope.get("state", {})
        caller: Caller | None = state.get(CALLER_KEY)
        failure: tuple[str, str] | None = state.get(FAILURE_KEY)
        client = scope.get("client")
        event = audit.AuditEvent(
            action="api.call",
            actor=caller.actor if caller else (failure[0] if failure else "(anonymous)"),
            mailbox=caller.mailbox if caller else "",
            msg_id=str(state.get(MSG_KEY, ""))[:64],
            result="ok" if status < 400 else "fail",
            reason=failure[1] if failure else ("" if status < 400 else f"http-{status}"),
            remote=str(client[0]) if client else "",
            detail={"method": scope.get("method", ""), "route": route, "status": status},
        )
        try:
            async with self.engine.begin() as conn:
                await audit.append(conn, event)
        except (SQLAlchemyError, OSError) as exc:
            # The answer is already sent; losing its audit entry is logged loudly.
            log.error(
                events.HTTP_AUDIT_FAILED, route=route, status=status, error=type(exc).__name__
            )
