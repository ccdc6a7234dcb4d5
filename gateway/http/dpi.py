"""The DPI routes: a hospital application sends from, and reads, its own mailbox only.

Every route takes the mailbox from the token, never from the request, so a
token of mailbox A asking for B's message finds nothing (404, the same as a
message that does not exist). Bodies are read through the mailstore, which
audits each read; sending goes through :mod:`gateway.http.send`. Content
(subjects, file names, bodies) is returned to the mailbox's owner and never
logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.parser
import email.policy
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage, Message
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from gateway.base.errors import MessageNotFound
from gateway.core import mdn
from gateway.core.model import Channel
from gateway.core.ports import INBOX, Principal, StoreMode
from gateway.http import queries
from gateway.http.auth import Caller
from gateway.http.context import ApiContext
from gateway.http.middleware import MSG_KEY
from gateway.http.problems import ApiProblem, problem_responses
from gateway.http.send import Outgoing, SendRequest, SendResult, submit
from gateway.mailstore import queries as mailbox_queries

__all__ = ["add_send_schemas", "dpi_router"]

_CHUNK = 64 * 1024
_MAX_FILES = 100
_POLL = 2.0  # seconds between database looks while long-polling
_REF = r"^[0-9a-f]{16}$"
Uid = Annotated[
    int, Path(ge=1, le=2**63 - 1, description="the message's UID in INBOX", examples=[42])
]


class MessageSummary(BaseModel):
    uid: int = Field(examples=[42])
    id: str = Field(examples=["9f2c4b1a0e7d3c55"], description="pli's reference")
    size: int = Field(examples=[48213])
    received_at: dt.datetime
    seen: bool = Field(examples=[False])


class MessagePage(BaseModel):
    messages: list[MessageSummary]
    next_cursor: int | None = Field(
        None, examples=[42], description="pass as cursor for the next page"
    )


class Header(BaseModel):
    name: str = Field(examples=["From"])
    value: str = Field(examples=["<urgences@ch-arras.mssante.fr>"])


class Part(BaseModel):
    index: int = Field(examples=[1])
    content_type: str = Field(examples=["application/pdf"])
    filename: str | None = Field(None, examples=["compte-rendu.pdf"])
    disposition: str | None = Field(None, examples=["attachment"])
    size: int = Field(examples=[40112])


class MessageDetail(MessageSummary):
    headers: list[Header]
    parts: list[Part]
    text: str | None = Field(
        None,
        description="the first text/plain part that is not an attachment",
        examples=["Bonjour, ..."],
    )


class DeliveryStatus(BaseModel):
    recipient: str = Field(examples=["sophie.bernard@ch-arras.mssante.fr"])
    state: str = Field(examples=["delivered"], description="delivered, queued, delayed, failed")
    attempts: int = Field(examples=[1])
    last_reply: str = Field(examples=["250 2.0.0 OK"])
    updated_at: dt.datetime


class Mdn(BaseModel):
    recipient: str = Field(examples=["dpi@ch-arras.mssante.fr"])
    disposition: str = Field(examples=["processed"])
    received_at: dt.datetime


class SendStatus(BaseModel):
    id: str = Field(examples=["9f2c4b1a0e7d3c55"])
    deliveries: list[DeliveryStatus]
    mdns: list[Mdn]


def _summary(row: mailbox_queries.MessageRow) -> MessageSummary:
    return MessageSummary(
        uid=row.uid,
        id=row.msg_ref,
        size=row.size,
        received_at=row.received_at,
        seen="\\Seen" in row.flags,
    )


def _leaves(msg: Message) -> list[Message]:
    return [p for p in msg.walk() if not p.is_multipart()]


def _parse(data: bytes) -> EmailMessage:
    return email.parser.BytesParser(policy=email.policy.default).parsebytes(data)


def _payload(part: Message) -> bytes:
    raw = part.get_payload(decode=True)
    return raw if isinstance(raw, bytes) else b""


def _describe(data: bytes) -> tuple[list[Header], list[Part], str | None]:
    msg = _parse(data)
    headers = []
    for name, raw in msg.raw_items():
        try:  # decoded (RFC 2047) when the header parses, as received otherwise
            value = str(msg.policy.header_fetch_parse(name, raw))
        except Exception:  # a hostile header must not turn a read into a 500
            value = str(raw)
        headers.append(Header(name=name, value=" ".join(value.split())))
    parts, text = [], None
    for i, part in enumerate(_leaves(msg)):
        disposition = part.get_content_disposition()
        payload = _payload(part)
        parts.append(
            Part(
                index=i,
                content_type=part.get_content_type(),
                filename=part.get_filename(),
                disposition=disposition,
                size=len(payload),
            )
        )
        if text is None and part.get_content_type() == "text/plain" and disposition != "attachment":
            charset = part.get_content_charset() or "utf-8"
            try:
                text = payload.decode(charset, "replace")
            except LookupError:
                text = payload.decode("utf-8", "replace")
    return headers, parts, text


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), _CHUNK):
        yield data[i : i + _CHUNK]


def _send_body_schema() -> dict[str, Any]:
    """Both request bodies of POST /v1/messages, for /openapi.json."""
    form = {
        "type": "object",
        "required": ["to"],
        "properties": {
            "to": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "example": ["sophie.bernard@ch-arras.mssante.fr"],
            },
            "subject": {"type": "string"},
            "body": {"type": "string"},
            "request_mdn": {"type": "boolean"},
            "attachments": {"type": "array", "items": {"type": "string", "format": "binary"}},
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SendRequest"}},
                "multipart/form-data": {
                    "schema": form,
                    "encoding": {"attachments": {"contentType": "application/octet-stream"}},
                },
            },
        }
    }


def add_send_schemas(doc: dict[str, Any]) -> None:
    """Register SendRequest (and Attachment) in components: the route reads its body itself."""
    schema = SendRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    components["SendRequest"] = schema


class MdnErrorRequest(BaseModel):
    code: str = Field(
        min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$", examples=["CDA-INVALIDE"]
    )
    label: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[ -~]+$",
        examples=["Document CDA non conforme au volet DLU"],
        description="printable ASCII: it goes into the MDN's Error field",
    )


def _mdn_request(data: bytes) -> mdn.MdnRequest | None:
    """The MDN the message asks of its envelope sender (the Return-Path pli recorded)."""
    head = data[: data.find(b"\r\n")] if data.startswith(b"Return-Path:") else b""
    envelope_sender = head.decode("latin-1").partition(":")[2].strip().strip("<>")
    return mdn.mdn_request(data, envelope_sender)


def dpi_router(ctx: ApiContext, needs: Callable[[str], Any]) -> APIRouter:
    router = APIRouter(prefix="/v1/messages", tags=["messages"])
    store = ctx.services.mailstore
    sender = Depends(needs("send"))
    reader = Depends(needs("read"))
    auth_errors = problem_responses(401, 403)

    async def read_body(
        caller: Caller, uid: int, request: Request
    ) -> tuple[mailbox_queries.MessageRow, bytes]:
        row = await mailbox_queries.find_message(ctx.engine, caller.mailbox, uid)
        if row is None:
            raise ApiProblem("not-found", "No such message in this mailbox")
        setattr(request.state, MSG_KEY, row.msg_ref)
        try:
            data = await store.fetch_body(
                Principal(caller.mailbox),
                INBOX,
                uid,
                caller.remote,
                purpose="api",
                channel=Channel.API,
            )
        except MessageNotFound:
            raise ApiProblem("not-found", "No such message in this mailbox") from None
        return row, data

    @router.post(
        "",
        status_code=202,
        response_model=SendResult,
        openapi_extra=_send_body_schema(),
        responses=problem_responses(400, 401, 403, 413, 415, 422, 429, 503),
        summary="Send a message from the token's mailbox",
    )
    async def send(request: Request, response: Response, caller: Caller = sender) -> SendResult:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                req = SendRequest.model_validate_json(await request.body())
            except ValidationError as exc:
                raise ApiProblem(
                    "invalid-request",
                    "See errors",
                    errors=[
                        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
                        for e in exc.errors()
                    ][:20],
                ) from None
            out = Outgoing.from_json(req)
        elif ctype == "multipart/form-data":
            # Files beyond 1 MiB are spooled to disk by the parser; the body cap applies first.
            async with request.form(max_files=_MAX_FILES, max_fields=1000) as form:
                out = await Outgoing.from_form(list(form.multi_items()), _MAX_FILES)
        else:
            raise ApiProblem(
                "unsupported-media-type", "Send application/json or multipart/form-data"
            )
        s = ctx.settings
        result = await submit(
            ctx.services.ingest,
            caller,
            out,
            hostname=s.hostname,
            max_recipients=s.smtp.max_recipients,
        )
        setattr(request.state, MSG_KEY, result.id)
        response.headers["Location"] = f"/v1/messages/{result.id}/status"
        return result

    @router.get(
        "",
        response_model=MessagePage,
        responses=auth_errors,
        summary="INBOX messages after a cursor (UID), oldest first",
    )
    async def list_messages(
        caller: Caller = reader,
        cursor: Annotated[
            int, Query(ge=0, le=2**63 - 1, examples=[0], description="the last UID already seen")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000, examples=[50])] = 50,
    ) -> MessagePage:
        limit = min(limit, ctx.settings.http.max_page)
        rows = await mailbox_queries.list_messages(ctx.engine, caller.mailbox, cursor, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return MessagePage(
            messages=[_summary(r) for r in rows], next_cursor=rows[-1].uid if more else None
        )

    @router.get(
        "/wait",
        response_model=MessagePage,
        responses=auth_errors,
        summary="Long-poll: return as soon as a message with UID > after arrives",
    )
    async def wait(
        caller: Caller = reader,
        after: Annotated[int, Query(ge=0, le=2**63 - 1, examples=[42])] = 0,
        seconds: Annotated[
            float,
            Query(
                alias="timeout", ge=0, le=600, examples=[30], description="seconds to wait at most"
            ),
        ] = 30,
    ) -> MessagePage:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(seconds, ctx.settings.http.long_poll_max)
        # Woken by this process's commits at once; other instances' commits by the poll.
        changed = store.notifier.subscribe(caller.mailbox)
        try:
            while await mailbox_queries.max_uid(ctx.engine, caller.mailbox) <= after:
                left = deadline - loop.time()
                if left <= 0:
                    return MessagePage(messages=[], next_cursor=None)
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(_POLL, left))
        finally:
            store.notifier.unsubscribe(caller.mailbox, changed)
        rows = await mailbox_queries.list_messages(
            ctx.engine, caller.mailbox, after, ctx.settings.http.max_page
        )
        return MessagePage(messages=[_summary(r) for r in rows], next_cursor=None)

    @router.get(
        "/{ref}/status",
        response_model=SendStatus,
        responses=problem_responses(401, 403, 404),
        summary="Delivery status of a message this mailbox sent",
    )
    async def status(
        request: Request,
        ref: Annotated[str, Path(pattern=_REF, examples=["9f2c4b1a0e7d3c55"])],
        caller: Caller = sender,
    ) -> SendStatus:
        setattr(request.state, MSG_KEY, ref)
        found = await queries.sent_status(ctx.engine, caller.mailbox, ref)
        if found is None:
            raise ApiProblem("not-found", "This mailbox sent no such message")
        return SendStatus(
            id=ref,
            deliveries=[
                DeliveryStatus(
                    recipient=d.recipient,
                    state=d.state,
                    attempts=d.attempts,
                    last_reply=d.last_reply,
                    updated_at=d.updated_at,
                )
                for d in found.deliveries
            ],
            mdns=[
                Mdn(
                    recipient=m.final_recipient,
                    disposition=m.disposition,
                    received_at=m.received_at,
                )
                for m in found.mdns
            ],
        )

    @router.get(
        "/{uid}",
        response_model=MessageDetail,
        responses=problem_responses(401, 403, 404, 503),
        summary="Headers and parts of a received message (an audited read)",
    )
    async def detail(request: Request, uid: Uid, caller: Caller = reader) -> MessageDetail:
        row, data = await read_body(caller, uid, request)
        headers, parts, text = await asyncio.to_thread(_describe, data)
        return MessageDetail(**_summary(row).model_dump(), headers=headers, parts=parts, text=text)

    @router.get(
        "/{uid}/raw",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"message/rfc822": {}}},
            **problem_responses(401, 403, 404, 503),
        },
        summary="The message as stored (RFC 5322)",
    )
    async def raw(request: Request, uid: Uid, caller: Caller = reader) -> StreamingResponse:
        _, data = await read_body(caller, uid, request)
        return StreamingResponse(
            _chunks(data), media_type="message/rfc822", headers={"Content-Length": str(len(data))}
        )

    @router.get(
        "/{uid}/attachments/{n}",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"application/octet-stream": {}}},
            **problem_responses(401, 403, 404, 503),
        },
        summary="One part of a received message, decoded",
    )
    async def attachment(
        request: Request,
        uid: Uid,
        n: Annotated[int, Path(ge=0, le=10_000, examples=[1])],
        caller: Caller = reader,
    ) -> StreamingResponse:
        _, data = await read_body(caller, uid, request)
        leaves = _leaves(await asyncio.to_thread(_parse, data))
        if n >= len(leaves):
            raise ApiProblem("not-found", "No such part")
        part = leaves[n]
        payload = await asyncio.to_thread(_payload, part)
        name = part.get_filename() or f"part-{n}"
        headers = {
            # RFC 6266 §4.3 / RFC 8187: the UTF-8 file name, percent-encoded.
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "Content-Length": str(len(payload)),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        }
        return StreamingResponse(
            _chunks(payload), media_type=part.get_content_type(), headers=headers
        )

    @router.post(
        "/{uid}/mdn",
        status_code=202,
        responses=problem_responses(401, 403, 404, 409, 422, 503),
        summary="Report an integration error to the sender (MDN processed/error)",
    )
    async def mdn_error(
        request: Request, uid: Uid, body: MdnErrorRequest, caller: Caller = sender
    ) -> Response:
        """MSSanté: a document the software could not integrate is answered ``processed/Error``
        with a code and a label. The automatic ``processed`` MDN was sent on delivery; this
        one follows it (RFC 8098 allows several dispositions for one message)."""
        _, data = await read_body(caller, uid, request)
        asked = await asyncio.to_thread(_mdn_request, data)
        if asked is None:
            raise ApiProblem(
                "conflict", "This message asks for no disposition notification of its sender"
            )
        sent = await ctx.services.ingest.send_mdn(
            caller.mailbox, asked, error=f"{body.code}: {body.label}"
        )
        if not sent:
            raise ApiProblem("unavailable", "The notification could not be sent now")
        return Response(status_code=202)

    @router.post(
        "/{uid}/ack",
        status_code=204,
        responses=problem_responses(401, 403, 404),
        summary="Mark a message processed (sets \\Seen)",
    )
    async def ack(request: Request, uid: Uid, caller: Caller = reader) -> Response:
        row = await mailbox_queries.find_message(ctx.engine, caller.mailbox, uid)
        if row is None:
            raise ApiProblem("not-found", "No such message in this mailbox")
        setattr(request.state, MSG_KEY, row.msg_ref)
        await store.store_flags(
            Principal(caller.mailbox), INBOX, [uid], StoreMode.ADD, frozenset({"\\Seen"})
        )
        return Response(status_code=204)

    return router
