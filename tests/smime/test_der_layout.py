"""The DER walker and the fast CMS layouts: strict on malformed lengths, truncation and BER,
and never a different answer from the asn1crypto path they stand in front of."""

from __future__ import annotations

import contextlib
import datetime

import pytest
from asn1crypto import core
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smime import layout
from gateway.smime.cms import MalformedCms, SmimeError, signed_attrs_der
from gateway.smime.der import DerError, Tlv, children, oid_der, oid_dotted, read_tlv
from gateway.smime.envelope import ContentCipher, decrypt, envelope
from gateway.smime.signing import attribute_der, signed_data
from gateway.smime.verification import verify
from tests.smime.conftest import DevPki
from tests.support.profiles import examples

BODY = b"Content-Type: text/plain\r\n\r\nbonjour\r\n" * 40
# Signed attributes as pli writes them: contentType, signingTime, messageDigest, one more.
_SIGNED_ATTRS = signed_attrs_der(
    [
        attribute_der("1.2.840.113549.1.9.3", core.ObjectIdentifier("1.2.840.113549.1.7.1").dump()),
        attribute_der(
            "1.2.840.113549.1.9.5",
            core.UTCTime(datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)).dump(),
        ),
        attribute_der("1.2.840.113549.1.9.4", core.OctetString(b"\xab" * 32).dump()),
        attribute_der("1.2.3.4", core.Null().dump(), core.Integer(7).dump()),
    ]
)


# ---------------------------------------------------------------- the walker


def test_short_and_long_lengths() -> None:
    assert read_tlv(b"\x04\x03abc", 0, 5) == Tlv(0x04, 0, 2, 5)
    long = b"\x04\x81\x80" + b"x" * 128
    assert read_tlv(long, 0, len(long)) == Tlv(0x04, 0, 3, 131)
    seq = b"\x30\x06\x02\x01\x05\x04\x01\x00"
    assert [t.tag for t in children(seq, read_tlv(seq, 0, len(seq)), 4)] == [0x02, 0x04]


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing
        b"\x30",  # no length
        b"\x30\x05\x02\x01",  # length beyond the input
        b"\x30\x82\x01",  # truncated inside a long length
        b"\x30\x80\x02\x01\x05\x00\x00",  # indefinite length (BER)
        b"\x04\x81\x05abcde",  # long form for a short length
        b"\x04\x82\x00\x80" + b"x" * 128,  # leading zero length octet
        b"\x04\x85\x00\x00\x00\x00\x01x",  # more length octets than any input here needs
        b"\x1f\x81\x00\x00",  # high tag number form
    ],
)
def test_malformed_lengths_are_refused(data: bytes) -> None:
    with pytest.raises(DerError):
        read_tlv(data, 0, len(data))


def test_children_stay_inside_their_parent_and_are_bounded() -> None:
    overrun = b"\x30\x03\x04\x05abcde"  # the child claims more than the parent holds
    with pytest.raises(DerError):
        children(overrun, read_tlv(overrun, 0, len(overrun)), 4)
    with pytest.raises(DerError, match="primitive"):
        children(b"\x04\x00", Tlv(0x04, 0, 2, 2), 4)
    many = b"\x30\x0a" + b"\x05\x00" * 5
    with pytest.raises(DerError, match="too many"):
        children(many, read_tlv(many, 0, len(many)), 4)
    assert len(children(many, read_tlv(many, 0, len(many)), 5)) == 5


def test_der_errors_are_smime_errors() -> None:
    assert issubclass(DerError, MalformedCms) and issubclass(DerError, SmimeError)


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_give_a_bounded_element_or_der_error(data: bytes) -> None:
    try:
        t = read_tlv(data, 0, len(data))
    except DerError:
        return
    assert 0 <= t.start < t.body <= t.end <= len(data)
    if t.constructed:
        try:
            kids = children(data, t, 8)
        except DerError:
            return
        assert all(t.body <= k.start < k.end <= t.end for k in kids)


@settings(max_examples=examples(200), deadline=None)
@given(st.integers(0, 2), st.integers(0, 39), st.lists(st.integers(0, 2**70), max_size=6))
def test_oid_round_trip_agrees_with_asn1crypto(first: int, second: int, rest: list[int]) -> None:
    dotted = ".".join(map(str, [first, second if first < 2 else second + 100, *rest]))
    contents = core.ObjectIdentifier(dotted).contents
    assert oid_der(dotted) == contents
    assert oid_dotted(contents) == dotted


@pytest.mark.parametrize("contents", [b"", b"\x2a\x80\x01", b"\x2a\x86"])
def test_malformed_oids_are_refused(contents: bytes) -> None:
    with pytest.raises(DerError):
        oid_dotted(contents)


# ---------------------------------------------------------------- fast path vs asn1crypto


def _indefinite(
    der: bytes, depth: int, chunk_tag: int | None = None, keep: tuple[int, ...] = ()
) -> bytes:
    """The same value with its outer ``depth`` levels of constructed elements re-encoded
    with indefinite lengths (BER, as ``openssl cms`` streams); primitive elements tagged
    ``chunk_tag`` inside them become constructed strings of two chunks; elements tagged
    as in ``keep`` stay DER."""
    t = read_tlv(der, 0, len(der))
    if chunk_tag is not None and t.tag == chunk_tag and 2 < t.end - t.body < 250:
        data = der[t.body : t.end]
        half = len(data) // 2
        chunks = b"".join(b"\x04" + bytes([len(c)]) + c for c in (data[:half], data[half:]))
        return bytes([t.tag | 0x20]) + b"\x80" + chunks + b"\x00\x00"
    if depth == 0 or not t.constructed or t.tag in keep:
        return der
    inner = b"".join(
        _indefinite(der[k.start : k.end], depth - 1, chunk_tag, keep) for k in children(der, t, 64)
    )
    return bytes([t.tag]) + b"\x80" + inner + b"\x00\x00"


@pytest.mark.parametrize("cipher", list(ContentCipher))
def test_ber_envelopes_take_the_asn1crypto_path_with_the_same_result(
    dev_pki: DevPki, cipher: ContentCipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    der = envelope(b"secret" * 20, [dev_pki.org.cert], cipher=cipher)
    calls: list[str] = []
    ber_path = layout._enveloped_ber

    def spy(data: bytes, max_size: int) -> layout.Sealed:
        calls.append("ber")
        return ber_path(data, max_size)

    monkeypatch.setattr(layout, "_enveloped_ber", spy)
    assert decrypt(der, dev_pki.org.cert, dev_pki.org.key) == b"secret" * 20
    assert calls == []  # plain DER: the walker
    for depth in (1, 2, 3):
        ber = _indefinite(der, depth)
        assert decrypt(ber, dev_pki.org.cert, dev_pki.org.key) == b"secret" * 20
    assert calls == ["ber"] * 3


def test_constructed_ciphertext_is_read_by_the_asn1crypto_path(dev_pki: DevPki) -> None:
    der = envelope(b"secret" * 20, [dev_pki.org.cert])
    # encryptedContent [0] IMPLICIT in chunks; recipientInfos stay DER (asn1crypto cannot
    # read a CHOICE with an indefinite length lazily: not what this test is about)
    ber = _indefinite(der, 5, chunk_tag=0x80, keep=(0x31,))
    assert b"\xa0\x80\x04" in ber
    with pytest.raises(DerError):
        layout._enveloped_der(ber)
    assert decrypt(ber, dev_pki.org.cert, dev_pki.org.key) == b"secret" * 20


def test_ber_signed_data_verifies_like_der(dev_pki: DevPki) -> None:
    der = signed_data(BODY, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain, detached=False)
    fast = verify(der, [dev_pki.root])
    assert fast.ok and fast.content == BODY
    for depth in (1, 2, 3, 4):
        ber = _indefinite(der, depth)
        with pytest.raises(DerError):
            layout._signed_der(ber)
        slow = verify(ber, [dev_pki.root])
        assert slow.ok and slow.content == BODY
        assert slow.signed_attrs == fast.signed_attrs and slow.signer_subject == fast.signer_subject


def test_layouts_agree_between_paths(dev_pki: DevPki) -> None:
    der = signed_data(BODY, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain, detached=False)
    fast, slow = layout._signed_der(der), layout._signed_ber(der, len(der))
    assert slow is not None
    assert (fast.content_type, fast.content, fast.certificates) == (
        slow.content_type,
        slow.content,
        slow.certificates,
    )
    assert [s.dump() for s in fast.signer_infos] == [s.dump() for s in slow.signer_infos]
    attrs = fast.signer_infos[0]["signed_attrs"].dump()
    walked = layout._attributes_der(attrs)
    parsed = layout.attributes(_indefinite(attrs, 1))  # BER: asn1crypto reads it
    assert [(a.oid, a.values_der, a.values) for a in walked] == [
        (a.oid, a.values_der, a.values) for a in parsed
    ]
    assert [a.oid for a in walked][:3] == [
        "1.2.840.113549.1.9.3",
        "1.2.840.113549.1.9.5",
        "1.2.840.113549.1.9.4",
    ]


def test_other_content_types_are_named_by_the_asn1crypto_path(dev_pki: DevPki) -> None:
    signed = signed_data(b"x", dev_pki.org.cert, dev_pki.org.key)
    with pytest.raises(MalformedCms, match="not enveloped data but signed_data"):
        decrypt(signed, dev_pki.org.cert, dev_pki.org.key)
    sealed = envelope(b"x", [dev_pki.org.cert])
    assert layout.locate_signed(sealed, len(sealed)) is None


@pytest.mark.parametrize("cut", [1, 2, 10, 100])
def test_truncated_layouts_are_malformed(dev_pki: DevPki, cut: int) -> None:
    der = envelope(b"secret" * 20, [dev_pki.org.cert])
    with pytest.raises(MalformedCms):
        layout.locate_enveloped(der[:-cut], len(der))
    signed = signed_data(BODY, dev_pki.org.cert, dev_pki.org.key, detached=False)
    with pytest.raises(MalformedCms):
        layout.locate_signed(signed[:-cut], len(signed))


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_through_the_layouts_are_malformed_or_parsed(data: bytes) -> None:
    for locate in (layout.locate_enveloped, layout.locate_signed, layout.attributes):
        with contextlib.suppress(MalformedCms):
            if locate is layout.attributes:
                layout.attributes(data)
            else:
                locate(data, 10_000)  # type: ignore[call-arg]


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=3))
def test_mutated_signed_attributes(edits: list[tuple[int, int]]) -> None:
    attrs = bytearray(b"\xa0" + _SIGNED_ATTRS[1:])
    for pos, value in edits:
        attrs[pos % len(attrs)] = value
    try:
        parsed = layout.attributes(bytes(attrs))
    except MalformedCms:
        return
    for a in parsed:
        assert a.der in attrs and a.values_der in a.der
        assert all(v in a.values_der for v in a.values)


def test_attribute_values_are_split() -> None:
    parsed = layout.attributes(b"\xa0" + _SIGNED_ATTRS[1:])
    assert sorted(a.oid for a in parsed) == [
        "1.2.3.4",
        "1.2.840.113549.1.9.3",
        "1.2.840.113549.1.9.4",
        "1.2.840.113549.1.9.5",
    ]
    assert next(a for a in parsed if a.oid == "1.2.3.4").values == [b"\x02\x01\x07", b"\x05\x00"]
