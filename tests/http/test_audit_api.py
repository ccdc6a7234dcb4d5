"""Auditors: query and export the trail, verify the chain; never a route to content."""

from __future__ import annotations

import csv
import io
import json

from tests.http.conftest import CABINET, DOCTOR, DPI, Api


async def test_auditor_queries_exports_and_verifies(api: Api) -> None:
    sender = await api.token(DPI, "send")
    auditor = await api.token("", "audit")
    async with api.client(sender) as c:
        r = await c.post(
            "/v1/messages", json={"to": [DOCTOR], "subject": "Secret clinique", "body": "x"}
        )
        assert r.status_code == 202
        ref = r.json()["id"]
    async with api.client(auditor) as c:
        r = await c.get(
            "/v1/audit/events", params={"action": "message.delivered", "mailbox": DOCTOR}
        )
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        events = r.json()
        assert any(e["msg_id"] == ref for e in events)
        assert all(e["mailbox"] == DOCTOR and e["action"] == "message.delivered" for e in events)

        r = await c.get("/v1/audit/events", params={"format": "jsonl", "action": "api.call"})
        lines = [json.loads(x) for x in r.text.splitlines()]
        assert any(e["msg_id"] == ref and e["actor"].startswith("token:") for e in lines)
        assert r.headers["content-type"] == "application/x-ndjson"

        r = await c.get(
            "/v1/audit/events", params={"format": "csv", "since": "2000-01-01", "limit": 5}
        )
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows[0][:4] == ["seq", "ts", "actor", "action"] and len(rows) == 6

        r = await c.get("/v1/audit/events", params={"since": "not a date"})
        assert r.status_code == 422 and r.json()["code"] == "invalid-request"

        r = await c.get("/v1/audit/verify")
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["ok"] is True and report["entries"] > 0
        assert report["checkpoints"] == {
            "checkpoints": 0,
            "ok": True,
            "bad_seq": None,
            "problem": "",
        }
        # Everything the auditor could fetch: no subject anywhere.
        r = await c.get("/v1/audit/events")
        assert "Secret clinique" not in r.text

        # The auditor has no route to a message: the read routes want the read scope.
        for path in (
            "/v1/messages",
            "/v1/messages/1",
            "/v1/messages/1/raw",
            "/v1/messages/1/attachments/0",
            f"/v1/messages/{ref}/status",
        ):
            r = await c.get(path)
            assert r.status_code == 403, path
    # ...and no route outside /v1/messages serves a message at all.
    async with api.client() as c:
        doc = (await c.get("/openapi.json")).json()
    content_routes = {p for p in doc["paths"] if p.startswith("/v1/messages")}
    audit_routes = {p for p in doc["paths"] if p.startswith("/v1/") and p not in content_routes}
    assert audit_routes == {"/v1/audit/events", "/v1/audit/verify", "/v1/audit/patient"}


async def test_audit_scope_is_required(api: Api) -> None:
    reader = await api.token(CABINET, "read", "send")
    async with api.client(reader) as c:
        assert (await c.get("/v1/audit/events")).status_code == 403
        assert (await c.get("/v1/audit/verify")).status_code == 403


async def test_patient_report_lists_the_accesses_to_a_patients_documents(api: Api) -> None:
    """The INS goes in the body (never a URL); the trail itself holds only pseudonyms."""
    import base64
    from pathlib import Path

    xdm = (
        Path(__file__).resolve().parents[1] / "fixtures" / "documents" / "xdm-sample.zip"
    ).read_bytes()
    sender = await api.token(DPI, "send")
    auditor = await api.token("", "audit")
    async with api.client(sender) as c:
        r = await c.post(
            "/v1/messages",
            json={
                "to": [DOCTOR],
                "subject": "DLU",
                "body": "ci-joint",
                "attachments": [
                    {
                        "filename": "IHE_XDM.zip",
                        "content_type": "application/zip",
                        "content_base64": base64.b64encode(xdm).decode(),
                    }
                ],
            },
        )
        assert r.status_code == 202, r.text
        ref = r.json()["id"]
        r = await c.post("/v1/messages", json={"to": [DOCTOR], "subject": "x", "body": "y"})
        other = r.json()["id"]
    async with api.client(auditor) as c:
        r = await c.post("/v1/audit/patient", json={"ins": "231056299901771"})
        assert r.status_code == 200, r.text
        events = r.json()
        assert {e["msg_id"] for e in events} == {ref} and other != ref
        assert {"message.accepted", "message.delivered"} <= {e["action"] for e in events}
        r = await c.post("/v1/audit/patient", json={"ins": "231056299901772"})
        assert r.status_code == 422 and "key 72 does not match 71" in r.json()["detail"]
        r = await c.get("/v1/audit/events")
        assert "231056299901771" not in r.text
    async with api.client(sender) as c:  # a DPI token has no audit scope
        r = await c.post("/v1/audit/patient", json={"ins": "231056299901771"})
        assert r.status_code == 403
