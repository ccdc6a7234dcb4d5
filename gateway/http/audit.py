"""The auditor's routes: query the audit trail (streamed JSON, JSON lines or CSV) and
verify its chain and signed checkpoints.

Scope ``audit`` only. Audit entries hold who/what/when, never content, and
this router offers no route to a message: an auditor cannot read a body,
subject or attachment through the API. Exports stream row by row from
``vault.audit.query`` so a year of entries never sits in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from gateway.base.db import utc as _utc
from gateway.http.auth import Caller
from gateway.http.context import ApiContext
from gateway.http.problems import ApiProblem, problem_responses
from vault import audit, checkpoints
from vault.base import VaultError

__all__ = ["audit_router"]

_COLUMNS = [
    "seq",
    "ts",
    "actor",
    "action",
    "mailbox",
    "msg_id",
    "result",
    "reason",
    "remote",
    "detail",
    "prev_hash",
    "hash",
]


class Format(StrEnum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class AuditEntry(BaseModel):
    seq: int = Field(examples=[1042])
    ts: str = Field(examples=["2026-11-23T10:15:02.123456+00:00"])
    actor: str = Field(examples=["token:3fa85f6457b2"])
    action: str = Field(examples=["message.read"])
    mailbox: str = Field(examples=["dpi@ch-arras.mssante.fr"])
    msg_id: str = Field(examples=["9f2c4b1a0e7d3c55"])
    result: str = Field(examples=["ok"])
    reason: str = Field(examples=[""])
    remote: str = Field(examples=["10.0.3.7"])
    detail: dict[str, Any] = Field(examples=[{"protocol": "imap", "uid": 42}])
    prev_hash: str
    hash: str


class CheckpointResult(BaseModel):
    checkpoints: int = Field(examples=[12])
    ok: bool
    bad_seq: int | None = None
    problem: str = ""


class PatientQuery(BaseModel):
    """In the body, never the URL: an INS must not reach access logs or proxies."""

    ins: str = Field(
        min_length=15,
        max_length=20,
        examples=["231056299901771"],
        description="the patient's INS: 13 characters and the 2-digit key",
    )


class VerifyResult(BaseModel):
    ok: bool = Field(examples=[True])
    entries: int = Field(examples=[10234])
    first_bad_seq: int | None = Field(None, examples=[None])
    problem: str = Field("", examples=[""])
    checkpoints: CheckpointResult | None = Field(
        None, description="null when no audit public key is configured"
    )


def audit_router(ctx: ApiContext, needs: Callable[[str], Any]) -> APIRouter:
    router = APIRouter(prefix="/v1/audit", tags=["audit"])
    auditor = Depends(needs("audit"))

    @router.get(
        "/events",
        responses={
            200: {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/AuditEntry"},
                        }
                    },
                    "application/x-ndjson": {},
                    "text/csv": {},
                }
            },
            **problem_responses(401, 403, 422),
        },
        response_class=StreamingResponse,
        summary="Audit entries matching every filter",
    )
    async def events(
        caller: Caller = auditor,
        mailbox: Annotated[
            str | None, Query(max_length=320, examples=["dpi@ch-arras.mssante.fr"])
        ] = None,
        actor: Annotated[str | None, Query(max_length=320, examples=["token:3fa85f6457b2"])] = None,
        action: Annotated[str | None, Query(max_length=64, examples=["message.read"])] = None,
        since: Annotated[dt.datetime | None, Query(examples=["2026-11-01T00:00:00Z"])] = None,
        until: Annotated[dt.datetime | None, Query(examples=["2026-12-01T00:00:00Z"])] = None,
        limit: Annotated[int | None, Query(ge=1, le=10_000_000, examples=[1000])] = None,
        format: Annotated[Format, Query(description="json (an array), jsonl or csv")] = Format.json,
    ) -> StreamingResponse:
        try:
            flt = audit.AuditFilter(
                mailbox=mailbox,
                actor=actor,
                action=action,
                since=_utc(since),
                until=_utc(until),
                limit=limit,
            )
        except ValueError:
            raise ApiProblem("invalid-request", "Invalid filter") from None
        if format is Format.csv:
            return StreamingResponse(_csv(ctx, flt), media_type="text/csv; charset=utf-8")
        if format is Format.jsonl:
            return StreamingResponse(_jsonl(ctx, flt), media_type="application/x-ndjson")
        return StreamingResponse(_json_array(ctx, flt), media_type="application/json")

    @router.post(
        "/patient",
        responses={
            200: {
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/AuditEntry"},
                        }
                    }
                }
            },
            **problem_responses(401, 403, 422, 503),
        },
        response_class=StreamingResponse,
        summary="Every access to one patient's documents (the patient's right to know)",
    )
    async def patient(query: PatientQuery, caller: Caller = auditor) -> StreamingResponse:
        from gateway.core.patients import load_patient_key, patient_ref
        from gateway.xdm import XdmError
        from gateway.xdm.ins import parse_ins

        try:
            ins = parse_ins(query.ins)
        except XdmError as exc:
            raise ApiProblem("invalid-request", f"INS: {exc}") from None
        path = ctx.settings.patient_key_path()
        if not path.exists():
            raise ApiProblem("unavailable", "No patient pseudonymisation key") from None
        ref = patient_ref(load_patient_key(path), ins)
        return StreamingResponse(
            _records_json(audit.patient_trail(ctx.engine, ref)), media_type="application/json"
        )

    @router.get(
        "/verify",
        response_model=VerifyResult,
        responses=problem_responses(401, 403, 503),
        summary="Recompute the hash chain and check the signed checkpoints",
    )
    async def verify(caller: Caller = auditor) -> VerifyResult:
        report = await audit.verify(ctx.engine)
        result = VerifyResult(
            ok=report.ok,
            entries=report.entries,
            first_bad_seq=report.first_bad_seq,
            problem=report.problem,
        )
        pub = ctx.settings.audit_key_path().with_suffix(".pub")
        if report.ok and pub.exists():
            try:
                key = checkpoints.load_public_key(pub)
            except VaultError:
                raise ApiProblem("unavailable", "The audit public key cannot be read") from None
            signed = await checkpoints.verify_checkpoints(ctx.engine, key)
            result.checkpoints = CheckpointResult(
                checkpoints=signed.checkpoints,
                ok=signed.ok,
                bad_seq=signed.bad_seq,
                problem=signed.problem,
            )
            result.ok = signed.ok
        return result

    return router


async def _jsonl(ctx: ApiContext, flt: audit.AuditFilter) -> AsyncIterator[bytes]:
    async for rec in audit.query(ctx.engine, flt):
        yield json.dumps(rec.as_dict(), sort_keys=True, ensure_ascii=False).encode() + b"\n"


async def _json_array(ctx: ApiContext, flt: audit.AuditFilter) -> AsyncIterator[bytes]:
    async for piece in _records_json(audit.query(ctx.engine, flt)):
        yield piece


async def _records_json(records: AsyncIterator[audit.AuditRecord]) -> AsyncIterator[bytes]:
    first = True
    yield b"["
    async for rec in records:
        yield (b"" if first else b",") + json.dumps(
            rec.as_dict(), sort_keys=True, ensure_ascii=False
        ).encode()
        first = False
    yield b"]"


async def _csv(ctx: ApiContext, flt: audit.AuditFilter) -> AsyncIterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(_COLUMNS)
    async for rec in audit.query(ctx.engine, flt):
        d = rec.as_dict()
        d["detail"] = json.dumps(d["detail"], sort_keys=True)
        # A cell starting with = + - @ is a formula to spreadsheet tools (CSV injection).
        writer.writerow(
            [
                "'" + v if isinstance(v, str) and v and v[0] in "=+-@" else v
                for v in (d[c] for c in _COLUMNS)
            ]
        )
        if buf.tell() > 32 * 1024:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode()
