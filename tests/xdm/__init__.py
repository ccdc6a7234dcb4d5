"""Tests of gateway.xdm, and the helpers they share to read fixtures and forge hostile zips.

The fixtures are the byte-identical copies in ``tests/fixtures/documents``;
the forging helpers patch raw zip headers, because :mod:`zipfile` refuses to
write most of what an attacker sends (NUL in names, lying sizes, encryption
flags).
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "documents"
META = "IHE_XDM/SUBSET01/METADATA.XML"
DOC = "IHE_XDM/SUBSET01/DOC0001.XML"
SAMPLE_INS = "231056299901771"
SAMPLE_XDS = "231056299901771^^^&1.2.250.1.213.1.4.10&ISO^NH"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sample_zip() -> bytes:
    return fixture("xdm-sample.zip")


def members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(i.filename, archive.read(i)) for i in archive.infolist()]


def make_zip(
    entries: list[tuple[str, bytes]],
    method: int = zipfile.ZIP_DEFLATED,
    external_attr: int = 0o644 << 16,
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2025, 3, 14, 9, 40, 0))
            info.compress_type = method
            info.create_system = 3
            info.external_attr = external_attr
            archive.writestr(info, data)
    return out.getvalue()


def replace_member(data: bytes, name: str, content: bytes | None) -> bytes:
    """The sample with one member's bytes replaced (or removed when ``content`` is None)."""
    entries = [(n, content if n == name else d) for n, d in members(data)]
    return make_zip([(n, d) for n, d in entries if d is not None])


def sample_with(metadata: bytes | None = None, document: bytes | None = None) -> bytes:
    data = sample_zip()
    if metadata is not None:
        data = replace_member(data, META, metadata)
    if document is not None:
        data = replace_member(data, DOC, document)
    return data


def _central(data: bytes, name: bytes) -> int:
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + name_len] == name:
            return pos
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise KeyError(name)


def patch_entry(
    data: bytes,
    name: str,
    *,
    file_size: int | None = None,
    compress_size: int | None = None,
    flags_or: int = 0,
    method: int | None = None,
) -> bytes:
    """Rewrite header fields of ``name`` in both the central directory and the local header."""
    buf = bytearray(data)
    central = _central(data, name.encode())
    local = struct.unpack_from("<L", data, central + 42)[0]
    for base, (flags, meth, csize, usize) in ((central, (8, 10, 20, 24)), (local, (6, 8, 18, 22))):
        if file_size is not None:
            struct.pack_into("<L", buf, base + usize, file_size)
        if compress_size is not None:
            struct.pack_into("<L", buf, base + csize, compress_size)
        if method is not None:
            struct.pack_into("<H", buf, base + meth, method)
        old = struct.unpack_from("<H", buf, base + flags)[0]
        struct.pack_into("<H", buf, base + flags, old | flags_or)
    return bytes(buf)


def rename_raw(
    data: bytes, old: str, new: bytes, *, local: bool = True, central: bool = True
) -> bytes:
    """Replace a member name by raw bytes of the same length (NUL, smuggling tests)."""
    raw = old.encode()
    assert len(raw) == len(new)
    buf = bytearray(data)
    pos = _central(data, raw)
    offset = struct.unpack_from("<L", data, pos + 42)[0]
    if central:
        buf[pos + 46 : pos + 46 + len(raw)] = new
    if local:
        buf[offset + 30 : offset + 30 + len(raw)] = new
    return bytes(buf)
