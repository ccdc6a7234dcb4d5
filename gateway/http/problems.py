"""The HTTP API's one error→reply function: RFC 9457 problem details for every error.

Every refusal leaves the API as ``application/problem+json`` with a stable
``type`` (``urn:pli:problem:<code>``) and ``code`` that clients may switch on;
the ``title`` is fixed per code and ``detail`` is written by pli, never
``str(exc)``. An unexpected exception becomes a 500 carrying an incident id
that is also logged, so a complaint leads to the log line without the peer
ever seeing a stack, a path or SQL. Request echoes (FastAPI's ``input``) are
dropped: they can hold message content.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from directory.base import DirectoryUnavailable
from gateway.base import events
from gateway.base.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PliError,
    Refused,
    is_temporary,
)
from vault.base import VaultUnavailable

__all__ = [
    "PROBLEM_JSON",
    "ApiProblem",
    "Problem",
    "install_handlers",
    "problem_response",
    "problem_responses",
]

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("pli.http")

# code -> (HTTP status, title). Codes are part of the API: add, never rename.
_TITLES: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request is malformed"),
    "unauthorized": (401, "Authentication required"),
    "forbidden": (403, "Not allowed"),
    "insufficient-scope": (403, "The token lacks the scope this call needs"),
    "policy-refused": (403, "Refused by policy"),
    "not-found": (404, "No such resource"),
    "method-not-allowed": (405, "Method not allowed"),
    "not-acceptable": (406, "Not acceptable"),
    "conflict": (409, "The resource is not in a state that allows this"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "Unsupported content type"),
    "invalid-request": (422, "The request is invalid"),
    "message-refused": (422, "The message was refused"),
    "rate-limited": (429, "Too many requests"),
    "internal-error": (500, "Internal error"),
    "unavailable": (503, "A dependency is unavailable, try again later"),
}
_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-request",
    429: "rate-limited",
    503: "unavailable",
}
RETRY_AFTER = 30  # seconds suggested to clients after a temporary failure
# pli's permanent errors by kind (gateway.base.errors), most specific first.
_PLI_ERRORS: tuple[tuple[type[PliError], str], ...] = (
    (NotFound, "not-found"),
    (Conflict, "conflict"),
    (PermissionDenied, "forbidden"),
    (InvalidInput, "invalid-request"),
    (Refused, "message-refused"),
)


class Problem(BaseModel):
    """RFC 9457 problem details, with pli's extension members."""

    type: str = Field(examples=["urn:pli:problem:message-refused"])
    title: str = Field(examples=["The message was refused"])
    status: int = Field(examples=[422])
    detail: str = Field("", examples=["Recipient not in the directory"])
    code: str = Field(examples=["message-refused"])
    instance: str = Field("", examples=["/v1/messages"])
    incident: str | None = Field(None, examples=["5f2c9a01b7e4"])
    reason: str | None = Field(None, examples=["recipient-unknown"])
    smtp_code: int | None = Field(None, examples=[550])
    enhanced_code: str | None = Field(None, examples=["5.1.1"])
    errors: list[dict[str, Any]] | None = None


class ApiProblem(Exception):
    """Raised by routes and dependencies; turned into a problem response."""

    def __init__(
        self,
        code: str,
        detail: str = "",
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.status = status or _TITLES[code][0]
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def problem_response(
    code: str,
    detail: str = "",
    *,
    status: int | None = None,
    instance: str = "",
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    st, title = _TITLES.get(code, (status or 500, "Error"))
    body: dict[str, Any] = {
        "type": f"urn:pli:problem:{code}",
        "title": title,
        "status": status or st,
        "detail": detail,
        "code": code,
        "instance": instance,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(
        body, status_code=status or st, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries declaring problem+json for these statuses."""
    return {
        s: {
            "model": Problem,
            "content": {PROBLEM_JSON: {}},
            "description": _TITLES[_BY_STATUS.get(s, "internal-error")][1],
        }
        for s in statuses
    }


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    # FastAPI echoes the offending input and context: content must not travel back or to logs.
    return [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ][:20]


def install_handlers(app: FastAPI) -> None:
    """Route every error the app can raise through :func:`problem_response`.

    Registered with FastAPI's decorator, which takes each handler as typed: Starlette
    calls a handler only for instances of the class it is registered for.
    """

    @app.exception_handler(ApiProblem)
    async def on_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            exc.code,
            exc.detail,
            status=exc.status,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _BY_STATUS.get(exc.status_code, "bad-request")
        headers = dict(exc.headers or {})
        return problem_response(
            code, status=exc.status_code, instance=request.url.path, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            "invalid-request",
            "See errors",
            instance=request.url.path,
            errors=_clean_errors(exc.errors()),
        )

    @app.exception_handler(PliError)
    async def on_pli_error(request: Request, exc: PliError) -> JSONResponse:
        if is_temporary(exc):
            # RFC 9110 §10.2.3: tell the client when to come back.
            return problem_response(
                "unavailable",
                exc.text,
                instance=request.url.path,
                headers={"Retry-After": str(RETRY_AFTER)},
                reason=exc.reason,
            )
        for kind, code in _PLI_ERRORS:
            if isinstance(exc, kind):
                return problem_response(
                    code, exc.text, instance=request.url.path, reason=exc.reason
                )
        return await on_unexpected(request, exc)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = secrets.token_hex(6)
        route = getattr(request.scope.get("route"), "path_format", "")
        log.error(
            events.HTTP_EXCEPTION,
            incident=incident,
            error=type(exc).__name__,
            route=route,
            exc_info=exc,
        )
        return problem_response(
            "internal-error", f"Incident {incident}", instance=request.url.path, incident=incident
        )

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # A backend that cannot answer now: temporary, like SMTP's 451 (never a 5xx 500).
        log.warning(events.HTTP_DEPENDENCY_UNAVAILABLE, error=type(exc).__name__)
        return problem_response(
            "unavailable",
            "A dependency is unavailable",
            instance=request.url.path,
            headers={"Retry-After": str(RETRY_AFTER)},
        )

    for unavailable in (DirectoryUnavailable, VaultUnavailable, OperationalError, SqlTimeoutError):
        app.add_exception_handler(unavailable, on_unavailable)
