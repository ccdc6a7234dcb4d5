"""Threats: garbage, truncated and mutated CMS/MIME must give a specific error or a
not-ok result, never another exception (hypothesis, a few hundred examples each)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.smime.cms import SmimeError, parse_content_info
from gateway.smime.envelope import ContentCipher, decrypt, encrypt, envelope
from gateway.smime.mime import classify, split_signed
from gateway.smime.signing import sign, signed_data
from gateway.smime.verification import VerificationResult, verify
from tests.smime.conftest import DevPki
from tests.support.profiles import examples

_FUZZ = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out[: max(1, len(out) - cut)])


_edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4)


@_FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(dev_pki: DevPki, data: bytes) -> None:
    for fn in (
        lambda: decrypt(data, dev_pki.org.cert, dev_pki.org.key),
        lambda: classify(data),
        lambda: split_signed(data),
        lambda: parse_content_info(data),
    ):
        with contextlib.suppress(SmimeError):
            fn()
    assert isinstance(verify(data, [dev_pki.root]), VerificationResult)


@_FUZZ
@given(_edits, st.integers(0, 400), st.sampled_from(list(ContentCipher)))
def test_mutated_envelopes(
    dev_pki: DevPki, edits: list[tuple[int, int]], cut: int, cipher: ContentCipher
) -> None:
    der = envelope(b"secret body" * 20, [dev_pki.org.cert], cipher=cipher)
    bad = _mutate(der, edits, cut)
    try:
        out = decrypt(bad, dev_pki.org.cert, dev_pki.org.key)
    except SmimeError:
        return
    if cipher is ContentCipher.AES256_GCM:  # authenticated: what decrypts is what was sent
        assert out == b"secret body" * 20
    # AES-CBC is malleable (an IV bit flip flips the same plaintext bit): why GCM is default


@_FUZZ
@given(_edits, st.integers(0, 400))
def test_mutated_signed_data(dev_pki: DevPki, edits: list[tuple[int, int]], cut: int) -> None:
    der = signed_data(b"body", dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain, detached=False)
    result = verify(_mutate(der, edits, cut), [dev_pki.root])
    assert isinstance(result, VerificationResult)
    if result.ok:
        assert result.content == b"body"


@_FUZZ
@given(_edits, st.integers(0, 200))
def test_mutated_mime(dev_pki: DevPki, edits: list[tuple[int, int]], cut: int) -> None:
    signed = sign(
        b"Content-Type: text/plain\r\n\r\nbody\r\n",
        dev_pki.org.cert,
        dev_pki.org.key,
        dev_pki.org.chain,
    )
    result = verify(_mutate(signed, edits, cut), [dev_pki.root])
    assert isinstance(result, VerificationResult)
    entity = encrypt(b"Content-Type: text/plain\r\n\r\nbody\r\n", [dev_pki.org.cert])
    with contextlib.suppress(SmimeError):
        decrypt(_mutate(entity, edits, cut), dev_pki.org.cert, dev_pki.org.key)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30",
        b"\x30\x80\x00\x00",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x30\x82\x00\x05\x06\x03\x2a\x03\x04",
        b"\x30" + b"\x80" * 50 + b"\x00" * 50,
    ],
)
def test_known_nasty_inputs(dev_pki: DevPki, data: bytes) -> None:
    with pytest.raises(SmimeError):
        decrypt(data or b"\x00", dev_pki.org.cert, dev_pki.org.key)
    assert not verify(data, [dev_pki.root]).ok


def test_deep_nesting_does_not_crash(dev_pki: DevPki) -> None:
    nested = b"\x30\x80" * 5000 + b"\x00\x00" * 5000
    with pytest.raises(SmimeError):
        decrypt(nested, dev_pki.org.cert, dev_pki.org.key)
    assert not verify(nested, [dev_pki.root]).ok


def test_embedded_certificate_with_an_invalid_version_is_skipped(dev_pki: DevPki) -> None:
    """Found by ``make fuzz``: X.509 version 2 (encoded 1) made cryptography raise
    InvalidVersion, which is no ValueError, out of the verifier."""
    der = signed_data(b"body", dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain, detached=False)
    v3 = b"\xa0\x03\x02\x01\x02"
    assert v3 in der
    result = verify(der.replace(v3, b"\xa0\x03\x02\x01\x01"), [dev_pki.root])
    assert not result.ok and result.reason is not None
