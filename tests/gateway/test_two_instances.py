"""Two pli operators on loopback: an EHPAD's and a hospital's, each trusting the other.

A user of instance A submits to a mailbox of instance B's domain: A queues it,
delivers it over SMTP with STARTTLS (verifying B's certificate), and B accepts
it from the trust space into the mailbox. Refusals by B come back as DSNs; an
outage of B is retried, across a restart of A, until delivered.
"""

from __future__ import annotations

import imaplib
import json
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.gateway.running import RunningPli, start_pli, stop_pli
from tests.support.datadir import DemoDataDirs
from tests.support.servers import free_port

pytestmark = pytest.mark.slow  # end to end: a real `pli serve` process

EHPAD = "ehpad-les-tilleuls.mssante.fr"
HOSPITAL = "ch-arras.mssante.fr"
NURSE = f"infirmiere.claire.martin@{EHPAD}"
SOPHIE = f"sophie.bernard@{HOSPITAL}"


def _ctx(cafile: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    return ctx


class Pair:
    def __init__(self, root: Path, demo_dirs: DemoDataDirs) -> None:
        self.root = root
        self.b_port = free_port()  # fixed, so that B can come back on the same port
        self.b_env = {"PLI_SMTP__MTA_PORT": str(self.b_port)}
        self.b = start_pli(demo_dirs.copy(root / "b", domains=(HOSPITAL,)), env=self.b_env)
        b_cert = root / "b" / "tls" / "server.crt"
        extra = (
            f'[queue]\nroutes = {{ "{HOSPITAL}" = "127.0.0.1:{self.b_port}" }}\n'
            f'ca_file = "{b_cert}"\nretry_base = 1\nretry_max = 2\npoll_interval = 0.2\n'
        )
        demo_dirs.copy(root / "a", domains=(EHPAD,), config_extra=extra)
        self.a = self.start_a()

    def start_a(self) -> RunningPli:
        return start_pli(self.root / "a")

    def submit(self, rcpt: str, subject: str) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", self.a.ports["submission"], timeout=30) as s:
            s.starttls(context=_ctx(self.a.cafile))
            s.login(NURSE, self.a.accounts[NURSE])
            s.mail(NURSE)
            code, msg = s.rcpt(rcpt)
            if code != 250:
                return code, msg
            return s.data(
                f"From: {NURSE}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n"
                "Transmission du dossier de liaison.\r\n".encode()
            )

    def queue(self) -> list[dict[str, object]]:
        done = self.a.cli("queue", "list", "--format", "json")
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, demo_dirs: DemoDataDirs) -> Iterator[Pair]:
    p = Pair(tmp_path_factory.mktemp("two"), demo_dirs)
    try:
        yield p
    finally:
        stop_pli(p.a)
        stop_pli(p.b)


def _matches(pli: RunningPli, user: str, marker: str) -> list[bytes]:
    imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
    try:
        imap.starttls(ssl_context=_ctx(pli.cafile))
        imap.login(user, pli.accounts[user])
        _, data = imap.select("INBOX")
        count = int(data[0] or 0)
        if not count:
            return []
        _, fetched = imap.fetch(f"1:{count}", "(BODY.PEEK[])")
        return [bytes(p[1]) for p in fetched if isinstance(p, tuple) and marker.encode() in p[1]]
    finally:
        imap.shutdown()


def _find(pli: RunningPli, user: str, marker: str, timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        found = _matches(pli, user, marker)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{marker} never reached {user}")
        time.sleep(0.3)


def _wait(cond: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.3)


def test_a_user_of_one_operator_writes_to_another(pair: Pair) -> None:
    marker = uuid.uuid4().hex
    code, msg = pair.submit(SOPHIE, marker)
    assert code == 250, msg
    raw = _find(pair.b, SOPHIE, marker)
    # Two hops: submission at A, then A -> B over TLS; one Return-Path, added by B.
    assert raw.count(b"Received: ") == 2 and raw.count(b"Return-Path:") == 1
    assert b"with ESMTPS" in raw and b"(using TLSv1." in raw
    entry = next(e for e in pair.queue() if e["recipient"] == SOPHIE)
    assert entry["state"] == "delivered" and str(entry["last_reply"]).startswith("250")
    audit = pair.a.cli("audit", "query", "--action", "message.relayed", "--format", "json")
    assert SOPHIE in audit.stdout
    assert pair.a.cli("audit", "verify").returncode == 0
    assert pair.b.cli("audit", "verify").returncode == 0


def test_a_refusal_by_the_other_operator_comes_back_as_a_dsn(pair: Pair) -> None:
    marker = uuid.uuid4().hex
    ghost = f"nobody.here@{HOSPITAL}"
    code, msg = pair.submit(ghost, marker)
    assert code == 250, msg  # A cannot know B's mailboxes: it queues, B refuses
    dsn = _find(pair.a, NURSE, ghost)
    assert b"multipart/report; report-type=delivery-status" in dsn
    assert b"Action: failed" in dsn and b"Status: 5.1.1" in dsn
    assert marker.encode() in dsn  # the original headers, so the sender knows which message
    assert b"Transmission du dossier" not in dsn  # but never the body
    _wait(lambda: any(e["recipient"] == ghost and e["state"] == "failed" for e in pair.queue()))


def test_not_in_the_trust_space_is_refused_at_rcpt(pair: Pair) -> None:
    code, msg = pair.submit("someone@example.org", "x")
    assert code == 550 and msg.startswith(b"5.7.1"), msg


def test_an_outage_is_retried_across_a_restart_of_the_sender(pair: Pair) -> None:
    stop_pli(pair.b)
    marker = uuid.uuid4().hex
    code, msg = pair.submit(SOPHIE, marker)
    assert code == 250, msg
    _wait(
        lambda: any(
            e["recipient"] == SOPHIE and e["state"] == "queued" and int(str(e["attempts"])) >= 1
            for e in pair.queue()
        )
    )
    stop_pli(pair.a)  # the queue is in A's database: a restart loses nothing
    pair.a = pair.start_a()
    pair.b = start_pli(pair.root / "b", env=pair.b_env)
    _find(pair.b, SOPHIE, marker, timeout=60)
    _wait(lambda: all(e["state"] != "queued" for e in pair.queue()))
    assert len(_matches(pair.b, SOPHIE, marker)) == 1  # delivered once
    assert pair.a.cli("queue", "purge", "--delivered").returncode == 0
    assert all(e["state"] != "delivered" for e in pair.queue())
