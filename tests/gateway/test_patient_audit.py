"""`pli audit patient INS`: every access to a patient's documents, without the INS in the trail.

The sample DLU message (an IHE XDM package for the test patient) goes from the
EHPAD to the hospital by SMTP and is read over IMAP; an unrelated message is
not listed; the INS itself appears in no audit entry.
"""

from __future__ import annotations

import imaplib
import smtplib
from pathlib import Path

import pytest

from tests.gateway.running import RunningPli

pytestmark = pytest.mark.slow  # end to end: a real `pli serve` process

MESSAGES = Path(__file__).resolve().parents[1] / "fixtures" / "messages"
NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
URGENCES = "urgences@ch-arras.mssante.fr"
GP = "jean.petit@medecin.mssante.fr"
INS = "231056299901771"


def test_patient_trail_lists_acceptance_delivery_and_reads(pli: RunningPli) -> None:
    dlu = (MESSAGES / "dlu-to-hospital.eml").read_bytes().replace(b"\r\n", b"\n")
    dlu = dlu.replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s:
        s.starttls(context=pli.client_context())
        s.sendmail(NURSE, [URGENCES], dlu)
        s.sendmail(NURSE, [GP], b"Subject: unrelated\r\n\r\nno patient here\r\n")
    imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
    try:
        imap.starttls(ssl_context=pli.client_context())
        imap.login(URGENCES, pli.accounts[URGENCES])
        _, count = imap.select("INBOX")
        assert count[0] is not None
        imap.fetch(count[0].decode(), "(BODY[])")
    finally:
        imap.shutdown()

    trail = pli.cli("audit", "patient", INS, "--format", "csv")
    assert trail.returncode == 0, trail.stderr
    rows = [line.split(",") for line in trail.stdout.strip().splitlines()[1:]]
    actions = [r[3] for r in rows]
    assert "message.accepted" in actions and "message.delivered" in actions
    assert any(r[3] == "message.read" and r[2] == URGENCES for r in rows), rows
    assert all(r[4] in ("", URGENCES) for r in rows)  # nothing about the GP's message
    assert len({r[5] for r in rows}) == 1  # one message
    table = pli.cli("audit", "patient", INS[:-2] + " 71")
    assert table.returncode == 0 and "entries about this patient's documents" in table.stdout

    exported = pli.cli("audit", "export")
    assert INS not in exported.stdout and INS[:13] not in exported.stdout
    bad = pli.cli("audit", "patient", INS[:-2] + "72")
    assert bad.returncode == 1 and "INS: key 72 does not match 71" in bad.stderr
    other = pli.cli("audit", "patient", "1" * 13 + f"{97 - int('1' * 13) % 97:02d}")
    assert other.returncode == 0 and "0 entries" in other.stdout
