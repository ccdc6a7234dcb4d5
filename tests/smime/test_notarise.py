"""Notarisation receipts checked by pli (openssl's check is in test_openssl_interop)."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.smime.notary import RECEIVED_AT_OID, notarise, verify_notarisation
from gateway.smime.verification import Reason
from tests.smime.conftest import DevPki

DATA = b"From: a@b.fr\r\n\r\nbody\r\n"


def test_receipt_attests_the_exact_time(dev_pki: DevPki) -> None:
    received = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)).replace(microsecond=123456)
    receipt = notarise(DATA, received, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    checked = verify_notarisation(receipt, DATA, [dev_pki.root], crls=[dev_pki.crl()])
    assert checked.result.ok, checked.result
    assert checked.received_at == received  # microseconds kept by id-pli-receivedAt
    assert checked.result.signing_time == received.replace(microsecond=0)
    assert RECEIVED_AT_OID in dict(checked.result.signed_attrs)


def test_other_bytes_do_not_match(dev_pki: DevPki) -> None:
    receipt = notarise(
        DATA, dt.datetime.now(dt.UTC), dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain
    )
    checked = verify_notarisation(receipt, DATA + b" ", [dev_pki.root])
    assert not checked.result.ok and checked.result.reason is Reason.DIGEST_MISMATCH
    assert checked.received_at is None


def test_receipt_outlives_its_certificate(dev_pki: DevPki) -> None:
    """Judged at its own signing time by default, so a receipt keeps checking after the
    notary certificate (3 years) expired: records are kept for 20."""
    receipt = notarise(
        DATA, dt.datetime.now(dt.UTC), dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain
    )
    assert verify_notarisation(receipt, DATA, [dev_pki.root]).result.ok
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=4 * 365)
    checked = verify_notarisation(receipt, DATA, [dev_pki.root], at_time=later)
    assert checked.result.reason is Reason.EXPIRED


def test_naive_time_is_refused(dev_pki: DevPki) -> None:
    with pytest.raises(ValueError, match="timezone"):
        notarise(DATA, dt.datetime(2026, 1, 1), dev_pki.org.cert, dev_pki.org.key)


def test_garbage_receipt(dev_pki: DevPki) -> None:
    checked = verify_notarisation(b"\x30\x03\x02\x01\x00", DATA, [dev_pki.root])
    assert not checked.result.ok and checked.received_at is None
