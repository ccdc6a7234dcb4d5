"""The rule file as an operator uses it: check, explain, DATA-stage refusals, reload on SIGHUP."""

from __future__ import annotations

import json
import signal
import smtplib
import ssl
import time
from email.message import EmailMessage

import pytest

from tests.gateway.running import RunningPli

pytestmark = pytest.mark.slow  # end to end: a real `pli serve` process

NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
GERIATRICIAN = "sophie.bernard@ch-arras.mssante.fr"


def _smtp(pli: RunningPli) -> smtplib.SMTP:
    ctx = ssl.create_default_context(cafile=str(pli.cafile))
    ctx.check_hostname = False
    s = smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30)
    s.starttls(context=ctx)
    s.ehlo("ehpad.test")
    return s


def _with_attachment(mime_type: str, name: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = NURSE, GERIATRICIAN, "compte rendu"
    msg.set_content("Bonjour, ci-joint le document.")
    maintype, subtype = mime_type.split("/")
    msg.add_attachment(b"MZ\x90\x00" * 100, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes().replace(b"\n", b"\r\n")


def test_attachment_type_refused_at_data_and_audited(pli: RunningPli) -> None:
    with _smtp(pli) as s:
        s.mail(NURSE)
        s.rcpt(GERIATRICIAN)
        code, msg = s.data(_with_attachment("application/x-msdownload", "ordonnance.exe"))
        assert code == 554 and msg.startswith(b"5.6.1") and b"x-msdownload" in msg, msg
        s.rset()
        s.mail(NURSE)
        s.rcpt(GERIATRICIAN)
        code, msg = s.data(_with_attachment("application/pdf", "compte-rendu.pdf"))
        assert code == 250, msg
    done = pli.cli("audit", "query", "--action", "smtp.data", "--format", "json")
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events and events[-1]["reason"] == "attachment-type"
    assert "ordonnance" not in done.stdout  # attachment names are content: never audited
    assert "ordonnance" not in pli.log_path.read_text()


def test_policy_check_and_explain(pli: RunningPli) -> None:
    rules = pli.data_dir / "policies.toml"
    ok = pli.cli("policy", "check", str(rules))
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = pli.data_dir / "bad-rules.toml"
    bad.write_text("[limits]\nmax_message_size = 'big'\n")
    refused = pli.cli("policy", "check", str(bad))
    assert refused.returncode == 1 and "limits.max_message_size" in refused.stderr
    shown = pli.cli(
        "policy",
        "explain",
        "--from",
        NURSE,
        "--to",
        GERIATRICIAN,
        "--to",
        "nobody@ch-arras.mssante.fr",
        "--to",
        "x@example.org",
        "--type",
        "application/pdf",
    )
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "250 2.1.0 Sender OK   (rule senders.listed)" in out
    assert "550 5.1.1 Recipient not in the directory   (rule recipients.listed)" in out
    assert "550 5.7.1 Relaying denied" in out and "(rule relay)" in out
    assert "encryption opportunistic" in out


def test_sighup_reloads_the_rule_file(pli: RunningPli) -> None:
    rules = pli.data_dir / "policies.toml"
    original = rules.read_text()
    try:
        rules.write_text(
            original + '\n[[rule]]\nid = "pause-ehpad"\n'
            'from = "*@ehpad-les-tilleuls.mssante.fr"\naction = "defer"\n'
            'text = "Paused by the operator"\n'
        )
        pli.proc.send_signal(signal.SIGHUP)
        deadline, code = time.monotonic() + 10, 0
        while time.monotonic() < deadline:
            with _smtp(pli) as s:
                code, msg = s.mail(NURSE)
            if code == 451:
                break
            time.sleep(0.2)
        assert code == 451 and b"Paused by the operator" in msg
        rules.write_text("this is not TOML [")
        refused = pli.count_events("policy.reload_failed")
        pli.proc.send_signal(signal.SIGHUP)
        pli.wait_for_event("policy.reload_failed", refused)
        with _smtp(pli) as s:
            assert s.mail(NURSE)[0] == 451  # a bad file is refused; the rules in force stay
    finally:
        rules.write_text(original)
        pli.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with _smtp(pli) as s:
                if s.mail(NURSE)[0] == 250:
                    break
            time.sleep(0.2)
