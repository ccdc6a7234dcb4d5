"""The bulk DATA reader: same answers as a line-by-line RFC 5321 reader, any packet split."""

from __future__ import annotations

import asyncio

import pytest

from gateway.smtp.data import DataState, read_data
from gateway.smtp.handler import _has_bare_cr_or_lf


async def _read(
    packets: list[bytes], size: int | None = 10_000, line: int = 1001, eof: bool = False
) -> tuple[DataState, bytes, bytes]:
    reader = asyncio.StreamReader(limit=line)
    for p in packets:
        reader.feed_data(p)
    if eof:
        reader.feed_eof()
    result = await asyncio.wait_for(read_data(reader, size_limit=size, line_limit=line), 5)
    rest = reader._buffer  # type: ignore[attr-defined]
    return result.state, result.content, bytes(rest)


async def test_empty_message() -> None:
    assert await _read([b".\r\nQUIT\r\n"]) == (DataState.NOMINAL, b"", b"QUIT\r\n")


async def test_one_line_then_marker_in_a_later_packet() -> None:
    assert await _read([b"abc\r\n", b".", b"\r", b"\n"]) == (DataState.NOMINAL, b"abc\r\n", b"")


@pytest.mark.parametrize("cut", range(1, 30))
async def test_marker_split_anywhere(cut: int) -> None:
    wire = b"Subject: x\r\n\r\nline\r\n..dotted\r\n.\r\nRSET\r\n"
    state, content, rest = await _read([wire[:cut], wire[cut:]])
    assert state is DataState.NOMINAL
    assert content == b"Subject: x\r\n\r\nline\r\n.dotted\r\n"
    assert rest == b"RSET\r\n"


async def test_leading_dot_unstuffed_on_first_line() -> None:
    assert (await _read([b"..x\r\n.\r\n"]))[1] == b".x\r\n"


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r"])
async def test_smuggled_end_markers_do_not_end_data(fake_end: bytes) -> None:
    wire = b"a" + fake_end + b"MAIL FROM:<x@y.fr>\r\n.\r\n"
    state, content, _ = await _read([wire])
    assert state is DataState.NOMINAL
    assert content.endswith(b"MAIL FROM:<x@y.fr>\r\n")  # one message, not two
    assert _has_bare_cr_or_lf(content)  # so the handler refuses it


async def test_too_much_is_consumed_to_the_end() -> None:
    state, content, rest = await _read([b"x" * 500 + b"\r\n"] * 40 + [b".\r\nNOOP\r\n"], size=2000)
    assert (state, content, rest) == (DataState.TOO_MUCH, b"", b"NOOP\r\n")


async def test_line_too_long() -> None:
    state, _, rest = await _read([b"y" * 1200 + b"\r\n.\r\n"])
    assert state is DataState.TOO_LONG and rest == b""


async def test_client_gone_mid_data() -> None:
    with pytest.raises(ConnectionResetError):
        await _read([b"partial\r\n"], eof=True)
