"""Fuzzing read_xdm: random bytes and mutated samples end in an XdmError or a valid package.

Never another exception, never a hang: each example is bounded by the
limits, and the run stays within a few seconds.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.smtp import replies
from gateway.xdm import XdmError, XdmLimits, inspect_xdm, read_xdm
from gateway.xdm.zipsafe import check_name
from tests.support.profiles import examples
from tests.xdm import sample_zip

SAMPLE = sample_zip()
LIMITS = XdmLimits(
    max_archive_bytes=64 * 1024, max_total_bytes=1024 * 1024, max_entry_bytes=512 * 1024
)
FUZZ = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _read(data: bytes) -> None:
    try:
        package = read_xdm(data, LIMITS)
    except XdmError as exc:
        assert exc.text and replies.for_error(exc).startswith("550 5.6.0 ")
        return
    assert package.ok and package.documents


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    _read(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_behind_a_zip_signature(data: bytes) -> None:
    _read(b"PK\x03\x04" + data + b"PK\x05\x06" + data[:18])


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(SAMPLE) - 1),
            st.integers(min_value=0, max_value=255),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_mutated_sample(changes: list[tuple[int, int]]) -> None:
    data = bytearray(SAMPLE)
    for pos, value in changes:
        data[pos] = value
    _read(bytes(data))
    with contextlib.suppress(XdmError):
        inspect_xdm(bytes(data), LIMITS, require_ins=False)


@FUZZ
@given(
    st.integers(min_value=0, max_value=len(SAMPLE)),
    st.integers(min_value=0, max_value=len(SAMPLE)),
    st.binary(max_size=64),
)
def test_spliced_sample(start: int, end: int, insert: bytes) -> None:
    start, end = sorted((start, end))
    _read(SAMPLE[:start] + insert + SAMPLE[end:])


@settings(max_examples=examples(150), deadline=None)
@given(st.text(max_size=300))
def test_check_name_only_raises_xdm_errors(name: str) -> None:
    try:
        check_name(name)
    except XdmError:
        return
    assert ".." not in name.split("/") and "\\" not in name and not name.startswith("/")
