"""DPI integration: send through the ingest core, read, acknowledge, status; authz."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

from tests.http.conftest import CABINET, DOCTOR, DPI, Api
from vault import audit


async def _events(api: Api, **flt: Any) -> list[audit.AuditRecord]:
    return [r async for r in audit.query(api.services.engine, audit.AuditFilter(**flt))]


async def _inbox_uids(api: Api, token: str) -> list[int]:
    async with api.client(token) as c:
        r = await c.get("/v1/messages", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return [m["uid"] for m in r.json()["messages"]]


async def test_send_json_reaches_the_recipient_and_the_audit_trail(api: Api) -> None:
    sender = await api.token(DPI, "send")
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 4
    body = {
        "to": [DOCTOR],
        "subject": "Compte rendu",
        "body": "Bonjour,\nci-joint.",
        "attachments": [
            {
                "filename": "cr.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(pdf).decode(),
            }
        ],
        "request_mdn": True,
    }
    async with api.client(sender) as c:
        r = await c.post("/v1/messages", json=body)
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["recipients"] == {"delivered": [DOCTOR], "queued": []}
    assert sent["message_id"].startswith(f"<{sent['id']}.")
    assert r.headers["location"] == f"/v1/messages/{sent['id']}/status"

    # The recipient's mailbox holds it (read through the mailstore, as IMAP would).
    from gateway.core.ports import Principal

    view = await api.services.mailstore.select(Principal(DOCTOR), "INBOX")
    data = await api.services.mailstore.fetch_body(
        Principal(DOCTOR), "INBOX", view.messages[-1].uid, "test"
    )
    assert b"Subject: Compte rendu" in data
    assert b"Disposition-Notification-To: " + DPI.encode() in data
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")

    accepted = await _events(api, action="message.accepted")
    assert any(e.msg_id == sent["id"] and e.actor == DPI for e in accepted)
    calls = [e for e in await _events(api, action="api.call") if e.msg_id == sent["id"]]
    assert calls and calls[-1].actor.startswith("token:")
    assert calls[-1].detail == {"method": "POST", "route": "/v1/messages", "status": 202}
    # No content in the audit trail: neither the subject nor the file name.
    for e in await _events(api):
        assert "Compte rendu" not in str(e.as_dict()) and "cr.pdf" not in str(e.as_dict())

    async with api.client(sender) as c:
        r = await c.get(f"/v1/messages/{sent['id']}/status")
    assert r.status_code == 200, r.text
    assert [(d["recipient"], d["state"]) for d in r.json()["deliveries"]] == [(DOCTOR, "delivered")]


async def test_send_multipart_with_files(api: Api) -> None:
    sender = await api.token(DPI, "send", "read")
    async with api.client(sender) as c:
        r = await c.post(
            "/v1/messages",
            data={"to": [DOCTOR], "subject": "Lettre", "body": "Texte"},
            files=[
                ("attachments", ("lettre.txt", b"contenu\n", "text/plain")),
                ("attachments", ("image.bin", b"\x00" * 2000000, "application/octet-stream")),
            ],
        )
    assert r.status_code == 413  # 2 MB > the test's 256 KiB cap
    assert r.headers["content-type"] == "application/problem+json"
    async with api.client(sender) as c:
        r = await c.post(
            "/v1/messages",
            data={"to": [DOCTOR], "subject": "Lettre", "body": "Texte"},
            files=[("attachments", ("lettre.txt", b"contenu\n", "text/plain"))],
        )
    assert r.status_code == 202, r.text


async def test_dpi_reads_lists_and_acknowledges_its_inbox(api: Api) -> None:
    doctor_app = await api.token(CABINET, "send")
    reader = await api.token(DPI, "read")
    before = await _inbox_uids(api, reader)
    async with api.client(doctor_app) as c:
        for i in range(3):
            r = await c.post(
                "/v1/messages",
                json={
                    "to": [DPI],
                    "subject": f"Demande {i}",
                    "body": f"corps {i}",
                    "attachments": [
                        {
                            "filename": f"doc{i}.txt",
                            "content_type": "text/plain",
                            "content_base64": base64.b64encode(b"doc %d" % i).decode(),
                        }
                    ],
                },
            )
            assert r.status_code == 202, r.text
    uids = await _inbox_uids(api, reader)
    new = [u for u in uids if u not in before]
    assert len(new) == 3

    async with api.client(reader) as c:
        # Cursor pagination: two pages of 2 then of 1 from the first new UID's predecessor.
        r = await c.get("/v1/messages", params={"cursor": new[0] - 1, "limit": 2})
        page = r.json()
        assert [m["uid"] for m in page["messages"]] == new[:2]
        assert page["next_cursor"] == new[1]
        r = await c.get("/v1/messages", params={"cursor": page["next_cursor"], "limit": 2})
        assert [m["uid"] for m in r.json()["messages"]] == new[2:]
        assert r.json()["next_cursor"] is None

        r = await c.get(f"/v1/messages/{new[0]}")
        assert r.status_code == 200, r.text
        detail = r.json()
        assert detail["text"].strip() == "corps 0"
        assert {"name": "Subject", "value": "Demande 0"} in detail["headers"]
        part = next(p for p in detail["parts"] if p["filename"] == "doc0.txt")
        r = await c.get(f"/v1/messages/{new[0]}/attachments/{part['index']}")
        assert r.status_code == 200 and r.content == b"doc 0"
        assert "doc0.txt" in r.headers["content-disposition"]
        r = await c.get(f"/v1/messages/{new[0]}/raw")
        assert r.headers["content-type"] == "message/rfc822"
        assert b"Subject: Demande 0" in r.content
        r = await c.get(f"/v1/messages/{new[0]}/attachments/99")
        assert r.status_code == 404

        assert not page["messages"][0]["seen"]
        r = await c.post(f"/v1/messages/{new[0]}/ack")
        assert r.status_code == 204
        r = await c.get("/v1/messages", params={"cursor": new[0] - 1, "limit": 1})
        assert r.json()["messages"][0]["seen"] is True
    reads = await _events(api, action="message.read", mailbox=DPI)
    assert reads  # the mailstore audited the reads


async def test_mailbox_isolation_and_scopes(api: Api) -> None:
    other = await api.token(CABINET, "send")
    reader_a = await api.token(DPI, "read")
    reader_b = await api.token(CABINET, "read")
    async with api.client(other) as c:
        r = await c.post("/v1/messages", json={"to": [DPI], "subject": "x", "body": "y"})
        assert r.status_code == 202
    uid = (await _inbox_uids(api, reader_a))[-1]
    async with api.client(reader_b) as c:
        for path in (
            f"/v1/messages/{uid}",
            f"/v1/messages/{uid}/raw",
            f"/v1/messages/{uid}/attachments/0",
        ):
            r = await c.get(path)
            assert r.status_code == 404, path
            assert r.json()["code"] == "not-found"
        assert (await c.post(f"/v1/messages/{uid}/ack")).status_code == 404
    async with api.client(reader_a) as c:
        # A read token cannot send; its status lookups need the send scope too.
        r = await c.post("/v1/messages", json={"to": [DOCTOR], "body": "x"})
        assert r.status_code == 403
        assert r.json()["code"] == "insufficient-scope"
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    async with api.client(other) as c:
        r = await c.get("/v1/messages")  # a send-only token cannot read
        assert r.status_code == 403


async def test_authentication_failures(api: Api) -> None:
    async with api.client() as c:
        r = await c.get("/v1/messages")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="pli"'
        assert r.json()["type"] == "urn:pli:problem:unauthorized"
    for bad in ("nonsense", "pli_000000000000." + "A" * 43):
        async with api.client(bad) as c:
            r = await c.get("/v1/messages")
            assert r.status_code == 401
            assert 'error="invalid_token"' in r.headers["www-authenticate"]
    token = await api.token(DPI, "read")
    token_id = token[4:16]
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    async with api.client(wrong) as c:
        assert (await c.get("/v1/messages")).status_code == 401
    from gateway.mailstore.tokens import TokenService

    assert await TokenService(api.services.engine).revoke(token_id)
    async with api.client(token) as c:
        assert (await c.get("/v1/messages")).status_code == 401
    failures = [e for e in await _events(api, action="api.call") if e.result == "fail"]
    assert any(e.actor == f"token:{token_id}" and e.reason == "bad-token" for e in failures)
    assert all(token[17:] not in str(e.as_dict()) for e in await _events(api))


async def test_policy_refusals_are_problems_with_smtp_codes(api: Api) -> None:
    sender = await api.token(DPI, "send")
    async with api.client(sender) as c:
        r = await c.post("/v1/messages", json={"to": ["nobody@ch-arras.mssante.fr"], "body": "x"})
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["code"] == "message-refused"
        assert problem["reason"] == "recipient-unknown"
        assert problem["smtp_code"] >= 500 and problem["enhanced_code"].startswith("5.")
        r = await c.post("/v1/messages", json={"to": ["someone@not-trusted.example"], "body": "x"})
        assert r.status_code in (403, 422), r.text
        r = await c.post("/v1/messages", json={"to": ["not an address"], "body": "x"})
        assert r.status_code == 422 and r.json()["reason"] == "invalid-address"
        r = await c.post("/v1/messages", json={"to": [DOCTOR], "subject": "a\r\nBcc: x"})
        assert r.status_code == 422 and r.json()["code"] == "invalid-request"
        assert "Bcc" not in r.text  # the offending input is not echoed
        r = await c.post("/v1/messages", content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 422
        r = await c.post("/v1/messages", content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415


async def test_upload_cap_declared_or_streamed(api: Api) -> None:
    sender = await api.token(DPI, "send")
    async with api.client(sender) as c:
        r = await c.post("/v1/messages", json={"to": [DOCTOR], "body": "x" * 300_000})
        assert r.status_code == 413
        assert r.json()["code"] == "payload-too-large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
            yield b'{"to": ["' + DOCTOR.encode() + b'"], "body": "'
            for _ in range(10):
                yield b"y" * 50_000
            yield b'"}'

        r = await c.post(
            "/v1/messages", content=chunks(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
    refused = [e for e in await _events(api, action="api.call") if e.detail["status"] == 413]
    assert len(refused) >= 2


async def test_status_shows_the_mdn_of_an_app_mailbox(api: Api) -> None:
    cabinet = await api.token(CABINET, "send")
    async with api.client(cabinet) as c:
        r = await c.post(
            "/v1/messages", json={"to": [DPI], "subject": "s", "body": "b", "request_mdn": True}
        )
        assert r.status_code == 202
        ref = r.json()["id"]
        r = await c.get(f"/v1/messages/{ref}/status")
    assert r.status_code == 200, r.text
    status = r.json()
    assert [(d["recipient"], d["state"]) for d in status["deliveries"]] == [(DPI, "delivered")]
    # dpi@ is an APP mailbox: pli answered "processed" on its behalf (RFC 8098).
    assert [(m["recipient"], m["disposition"]) for m in status["mdns"]] == [(DPI, "processed")]
    other = await api.token(DPI, "send")
    async with api.client(other) as c:  # only the sender sees the status
        assert (await c.get(f"/v1/messages/{ref}/status")).status_code == 404


async def test_long_poll_returns_when_a_message_arrives(api: Api) -> None:
    reader = await api.token(DPI, "read")
    sender = await api.token(CABINET, "send")
    last = max(await _inbox_uids(api, reader), default=0)
    async with api.client(reader) as c:
        r = await c.get("/v1/messages/wait", params={"after": last, "timeout": 0.2})
        assert r.status_code == 200 and r.json()["messages"] == []

        async def send_soon() -> None:
            await asyncio.sleep(0.3)
            async with api.client(sender) as s:
                assert (
                    await s.post("/v1/messages", json={"to": [DPI], "body": "b"})
                ).status_code == 202

        task = asyncio.create_task(send_soon())
        started = asyncio.get_running_loop().time()
        r = await c.get("/v1/messages/wait", params={"after": last, "timeout": 20})
        waited = asyncio.get_running_loop().time() - started
        await task
    assert [m["uid"] > last for m in r.json()["messages"]] == [True]
    assert waited < 5  # woken by the commit, not by the timeout


async def test_dpi_reports_an_integration_error_by_mdn(api: Api) -> None:
    """MSSanté: a document the software cannot use is answered processed/Error, code + label."""
    cabinet = await api.token(CABINET, "send")
    dpi = await api.token(DPI, "send", "read")
    async with api.client(cabinet) as c:
        r = await c.post(
            "/v1/messages", json={"to": [DPI], "subject": "s", "body": "b", "request_mdn": True}
        )
        ref = r.json()["id"]
        r = await c.post("/v1/messages", json={"to": [DPI], "subject": "s2", "body": "b"})
        plain = r.json()["id"]
    async with api.client(dpi) as c:
        page = (await c.get("/v1/messages", params={"limit": 200})).json()["messages"]
        by_ref = {m["id"]: m["uid"] for m in page}
        asked, not_asked = by_ref[ref], by_ref[plain]
        r = await c.post(
            f"/v1/messages/{asked}/mdn",
            json={"code": "CDA-INVALIDE", "label": "Volet DLU non conforme"},
        )
        assert r.status_code == 202, r.text
        r = await c.post(f"/v1/messages/{not_asked}/mdn", json={"code": "X", "label": "y"})
        assert r.status_code == 409 and r.json()["code"] == "conflict"
        r = await c.post(f"/v1/messages/{asked}/mdn", json={"code": "bad code!", "label": "y"})
        assert r.status_code == 422
    reader_only = await api.token(DPI, "read")
    async with api.client(reader_only) as c:  # sending an MDN is sending: scope "send"
        r = await c.post(f"/v1/messages/{asked}/mdn", json={"code": "X", "label": "y"})
        assert r.status_code == 403
    async with api.client(cabinet) as c:
        status = (await c.get(f"/v1/messages/{ref}/status")).json()
    assert sorted(m["disposition"] for m in status["mdns"]) == ["processed", "processed/error"]


async def test_a_cda_is_sent_as_ihe_xdm_with_the_mss_headers(api: Api) -> None:
    """The DPI gives a CDA; pli builds IHE_XDM.zip and X-MSS-INS / X-MSS-CODECDA."""
    import email
    import email.policy
    from pathlib import Path

    from gateway.xdm import read_xdm

    dlu = (
        Path(__file__).resolve().parents[1] / "fixtures" / "documents" / "dlu-sample.xml"
    ).read_bytes()
    sender = await api.token(DPI, "send")
    reader = await api.token(CABINET, "read")
    async with api.client(sender) as c:
        r = await c.post(
            "/v1/messages",
            json={
                "to": [CABINET],
                "subject": "DLU",
                "body": "ci-joint",
                "cda": {"filename": "dlu.xml", "content_base64": base64.b64encode(dlu).decode()},
            },
        )
        assert r.status_code == 202, r.text
        ref = r.json()["id"]
        bad = await c.post(
            "/v1/messages",
            json={"to": [CABINET], "cda": {"content_base64": base64.b64encode(b"<x/>").decode()}},
        )
        assert bad.status_code == 422 and bad.json()["detail"].startswith("cda: ")
        wrong = await c.post(
            "/v1/messages",
            json={
                "to": [CABINET],
                "cda": {"content_base64": base64.b64encode(dlu).decode(), "ins": "231056299901772"},
            },
        )
        assert wrong.status_code == 422 and "key 72" in wrong.json()["detail"]
    async with api.client(reader) as c:
        page = (await c.get("/v1/messages", params={"limit": 200})).json()["messages"]
        uid = {m["id"]: m["uid"] for m in page}[ref]
        raw = (await c.get(f"/v1/messages/{uid}/raw")).content
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert (msg["X-MSS-INS"], msg["X-MSS-CODECDA"]) == ("O", "34133-9")
    [zipped] = [p for p in msg.walk() if p.get_filename() == "IHE_XDM.zip"]
    payload = zipped.get_payload(decode=True)
    assert isinstance(payload, bytes)
    package = read_xdm(payload)
    assert package.patient_ins is not None and package.patient_ins.value == "231056299901771"
