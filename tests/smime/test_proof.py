"""What a message's receipts prove (``gateway.core.proof``), against the development PKI.

``pli vault proof`` prints this verdict (``tests/gateway/test_smime_path.py`` runs it
end to end); here each rule is pinned on its own: which bytes a receipt covers, a
part that is gone, an altered object, receipts that cannot be checked, and the time.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from gateway.core import evidence
from gateway.core.proof import PART_NOT_FOUND, check
from gateway.core.trust import TrustStore
from gateway.smime.notary import notarise
from tests.smime.conftest import DevPki

PDF = b"%PDF-1.4\n%\xc3\xa4\xc3\xbc\xc3\xb6\xc3\x9f\n"
MAIN = (
    b"From: a@hopital.example.fr\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
    b"Content-Type: text/plain\r\n\r\nVoir PJ\r\n--b1\r\n"
    b'Content-Type: application/pdf; name="x.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    + base64.b64encode(PDF)
    + b"\r\n--b1--\r\n"
)
ORIGINAL = b"From: a@hopital.example.fr\r\nContent-Type: application/pkcs7-mime\r\n\r\nMIIB\r\n"
# Within the certificates' validity: the session's PKI was issued moments ago.
EARLIER = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)).replace(microsecond=250000)
LATER = EARLIER + dt.timedelta(seconds=20)


@pytest.fixture(scope="module")
def trust(dev_pki: DevPki) -> TrustStore:
    return TrustStore([dev_pki.root], [dev_pki.intermediate], [dev_pki.paths.crl])


def _receipt(dev_pki: DevPki, data: bytes, at: dt.datetime = EARLIER) -> bytes:
    return notarise(data, at, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)


def test_each_receipt_is_checked_over_the_bytes_it_covers(
    dev_pki: DevPki, trust: TrustStore
) -> None:
    receipts = [
        (evidence.RECEIPT, None, _receipt(dev_pki, MAIN)),
        (evidence.RECEIPT_ORIGINAL, None, _receipt(dev_pki, ORIGINAL)),
        (evidence.RECEIPT_PART, 2, _receipt(dev_pki, PDF)),  # the decoded attachment
    ]
    proof = check(trust, MAIN, ORIGINAL, receipts)
    assert proof.verified and proof.attachments == 1
    assert [(c.covers, c.ok, c.why) for c in proof.checks] == [
        ("message", True, ""),
        ("original", True, ""),
        ("part 2", True, ""),
    ]
    assert [c.data for c in proof.checks] == [MAIN, ORIGINAL, PDF]
    assert [c.receipt for c in proof.checks] == [r for _, _, r in receipts]
    assert proof.received_at == EARLIER  # to the microsecond


def test_altered_bytes_and_a_vanished_part_do_not_verify(
    dev_pki: DevPki, trust: TrustStore
) -> None:
    altered = MAIN.replace(b"Voir PJ", b"Voir pj")
    proof = check(
        trust,
        altered,
        None,
        [
            (evidence.RECEIPT, None, _receipt(dev_pki, MAIN, EARLIER)),
            (evidence.RECEIPT_PART, 5, _receipt(dev_pki, PDF, EARLIER)),  # no part 5
            (evidence.RECEIPT_PART, 2, _receipt(dev_pki, PDF, LATER)),
        ],
    )
    message, gone, part = proof.checks
    assert not message.ok and message.why == "digest-mismatch" and message.received_at is None
    assert not gone.ok and gone.why == PART_NOT_FOUND and gone.data == b""
    assert gone.covers == "part 5"
    assert part.ok  # the attachment itself is unchanged
    assert not proof.verified
    assert proof.received_at == LATER  # only a receipt that verifies says when


def test_a_receipt_over_other_bytes_does_not_verify(dev_pki: DevPki, trust: TrustStore) -> None:
    proof = check(trust, MAIN, None, [(evidence.RECEIPT, None, _receipt(dev_pki, PDF))])
    assert not proof.verified and proof.received_at is None
    assert proof.checks[0].why == "digest-mismatch"


def test_no_receipt_proves_nothing(dev_pki: DevPki, trust: TrustStore) -> None:
    proof = check(trust, MAIN, ORIGINAL, [])
    assert proof.checks == () and not proof.verified and proof.received_at is None
    assert proof.attachments == 1


def test_receipts_that_cannot_be_checked_are_left_out(dev_pki: DevPki, trust: TrustStore) -> None:
    """An original receipt with no original stored, a part receipt without an index and
    rows that are no receipt at all: nothing to check them against."""
    proof = check(
        trust,
        MAIN,
        None,
        [
            (evidence.RECEIPT_ORIGINAL, None, _receipt(dev_pki, ORIGINAL)),
            (evidence.RECEIPT_PART, None, _receipt(dev_pki, PDF)),
            (evidence.OUTBOUND, None, b"not a receipt"),
            (evidence.RECEIPT, None, _receipt(dev_pki, MAIN)),
        ],
    )
    assert [c.covers for c in proof.checks] == ["message"] and proof.verified


def test_a_plain_message_has_no_attachment(dev_pki: DevPki, trust: TrustStore) -> None:
    plain = b"From: a@hopital.example.fr\r\n\r\nbonjour\r\n"
    proof = check(trust, plain, None, [(evidence.RECEIPT, None, _receipt(dev_pki, plain))])
    assert proof.verified and proof.attachments == 0
