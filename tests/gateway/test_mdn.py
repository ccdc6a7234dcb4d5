"""MDNs (RFC 8098): APP mailboxes acknowledge on request, received ones are tracked."""

from __future__ import annotations

import json
import smtplib
import ssl
import time
import uuid

import pytest

from gateway.core.mdn import MdnRequest, build_mdn, mdn_request, parse_acks
from tests.gateway.running import RunningPli

NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
DPI = "dpi@ch-arras.mssante.fr"  # an APP mailbox: the hospital's software
SOPHIE = "sophie.bernard@ch-arras.mssante.fr"  # a person: her client decides, not pli


def test_build_and_parse_round_trip() -> None:
    request = MdnRequest(notify=NURSE, message_id="<m1@ehpad.test>")
    ok = build_mdn(reporting_ua="mx.test", mailbox=DPI, request=request)
    assert [(a.original_message_id, a.final_recipient, a.disposition) for a in parse_acks(ok)] == [
        ("<m1@ehpad.test>", DPI, "processed")
    ]
    bad = build_mdn(reporting_ua="mx.test", mailbox=DPI, request=request, error="XDM invalide")
    assert parse_acks(bad)[0].disposition == "processed/error" and b"Error: XDM" in bad
    assert parse_acks(b"Subject: hello\r\n\r\ndisposition-notification\r\n") == []


def test_requests_only_to_the_envelope_sender() -> None:
    head = (
        f"Disposition-Notification-To: Claire <{NURSE}>\r\nMessage-ID: <m2@ehpad.test>\r\n\r\n"
    ).encode()
    assert mdn_request(head, NURSE) == MdnRequest(NURSE, "<m2@ehpad.test>")
    assert mdn_request(head, "other@ehpad-les-tilleuls.mssante.fr") is None  # a third party
    assert mdn_request(head, "") is None  # a DSN or MDN never gets one
    two = head.replace(b"Message-ID", b"Disposition-Notification-To: x@y.fr\r\nMessage-ID")
    assert mdn_request(two, NURSE) is None


def _send(pli: RunningPli, rcpt: str, message_id: str) -> None:
    ctx = ssl.create_default_context(cafile=str(pli.cafile))
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s:
        s.starttls(context=ctx)
        s.sendmail(
            NURSE,
            [rcpt],
            (
                f"From: {NURSE}\r\nTo: {rcpt}\r\nSubject: resultats\r\n"
                f"Message-ID: {message_id}\r\nDisposition-Notification-To: {NURSE}\r\n\r\n"
                "Compte rendu.\r\n"
            ).encode(),
        )


def _acks(pli: RunningPli, message_id: str) -> list[dict[str, str]]:
    done = pli.cli("mdn", "list", "--message-id", message_id, "--format", "json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.slow  # end to end: a real `pli serve` process
def test_an_app_mailbox_acknowledges_and_the_sender_can_query_it(pli: RunningPli) -> None:
    message_id = f"<{uuid.uuid4().hex}@ehpad-les-tilleuls.mssante.fr>"
    _send(pli, DPI, message_id)
    deadline = time.monotonic() + 10
    while not (acks := _acks(pli, message_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [(a["final_recipient"], a["disposition"]) for a in acks] == [(DPI, "processed")]
    audit = pli.cli(
        "audit", "query", "--mailbox", NURSE, "--action", "message.delivered", "--format", "json"
    )
    assert any(json.loads(line)["actor"] == "" for line in audit.stdout.splitlines())
    # A person's mailbox: pli does not answer for her.
    other = f"<{uuid.uuid4().hex}@ehpad-les-tilleuls.mssante.fr>"
    _send(pli, SOPHIE, other)
    time.sleep(0.5)
    assert _acks(pli, other) == []
