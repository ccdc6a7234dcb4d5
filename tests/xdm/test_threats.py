"""Hostile packages: zip bombs (honest and lying headers), traversal names, smuggling, XXE.

Each must end in a specific :class:`XdmError` naming the member or field,
quickly and without decompressing past a limit.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
import zipfile

import pytest

from gateway.xdm import (
    XdmLimitExceeded,
    XdmLimits,
    XdmMalformed,
    XdmUnsafe,
    XdmUnsafeName,
    XdmUnsafeXml,
    read_xdm,
)
from tests.xdm import (
    DOC,
    META,
    fixture,
    make_zip,
    members,
    patch_entry,
    rename_raw,
    replace_member,
    sample_with,
    sample_zip,
)

MiB = 1024 * 1024


def with_extra(name: str, data: bytes, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """The sample plus one more member, compressed with ``method``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for old, content in members(sample_zip()):
            archive.writestr(old, content, zipfile.ZIP_DEFLATED)
        archive.writestr(name, data, method)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../evil.xml", "'..' path component"),
        ("IHE_XDM/../../evil.xml", "'..' path component"),
        ("/etc/cron.d/evil", "absolute path"),
        ("IHE_XDM\\SUBSET01\\evil.xml", "backslash"),
        ("C:/Windows/evil.xml", "drive letter"),
        ("c:evil.xml", "drive letter"),
        ("IHE_XDM//evil.xml", "empty, '.' or '..'"),
        ("./evil.xml", "empty, '.' or '..'"),
        ("DOC.XML:stream", "contains ':'"),
        ("IHE_XDM/CON.XML", "reserved Windows device"),
        ("evil\u202eLMX.exe", "invisible formatting"),
        ("evil\x07.xml", "control"),
        ("x" * 300, "longer than 255"),
    ],
)
def test_hostile_member_names(name: str, problem: str) -> None:
    with pytest.raises(XdmUnsafeName, match=problem) as caught:
        read_xdm(with_extra(name, b"x"))
    assert caught.value.field == "name"
    assert caught.value.member is not None


def test_nul_in_a_member_name() -> None:
    # zipfile would cut the name at the NUL; the raw name is what is checked.
    data = rename_raw(with_extra("EVILX.XML", b"x"), "EVILX.XML", b"EVIL\x00.XML")
    with pytest.raises(XdmUnsafeName, match=r"contains NUL"):
        read_xdm(data)


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("dup", [DOC, DOC.lower(), "index.htm"])
def test_duplicate_names_even_by_case(dup: str) -> None:
    with pytest.raises(XdmUnsafeName, match=r"duplicate of member") as caught:
        read_xdm(with_extra(dup, b"x"))
    assert caught.value.member is not None and dup in caught.value.member


def test_local_and_central_names_differ() -> None:
    data = rename_raw(with_extra("AAAA.TXT", b"x"), "AAAA.TXT", b"BBBB.TXT", central=False)
    with pytest.raises(XdmUnsafe, match=r"local header disagrees") as caught:
        read_xdm(data)
    assert caught.value.member == "AAAA.TXT"


def test_encrypted_member() -> None:
    data = patch_entry(sample_zip(), DOC, flags_or=0x1)
    with pytest.raises(XdmUnsafe, match=r"encrypted") as caught:
        read_xdm(data)
    assert (caught.value.member, caught.value.field) == (DOC, "flags")


def test_bzip2_member_is_refused() -> None:
    with pytest.raises(XdmUnsafe, match=r"compression method 12") as caught:
        read_xdm(with_extra("EXTRA.TXT", b"x" * 100, method=zipfile.ZIP_BZIP2))
    assert caught.value.member == "EXTRA.TXT"


def test_symlink_member() -> None:
    data = make_zip([("LINK", b"/etc/passwd")], external_attr=(stat.S_IFLNK | 0o777) << 16)
    with pytest.raises(XdmUnsafeName, match=r"symbolic link"):
        read_xdm(data)


@pytest.mark.parametrize("name", ["INNER.ZIP", "IHE_XDM/SUBSET01/DOC0002.XML"])
def test_nested_zip(name: str) -> None:
    with pytest.raises(XdmUnsafe, match=r"nested zip") as caught:
        read_xdm(with_extra(name, sample_zip(), method=zipfile.ZIP_STORED))
    assert caught.value.member == name


def test_zip_bomb_by_declared_ratio() -> None:
    started = time.monotonic()
    with pytest.raises(XdmLimitExceeded, match=r"declared compression ratio above 100:1") as caught:
        read_xdm(with_extra("BOMB.XML", bytes(20 * MiB)))
    assert (caught.value.member, caught.value.field) == ("BOMB.XML", "compress_size")
    assert time.monotonic() - started < 5


def test_zip_bomb_by_declared_total() -> None:
    limits = XdmLimits(max_total_bytes=MiB)
    data = make_zip([(f"R{i}.BIN", os.urandom(300_000)) for i in range(4)])
    with pytest.raises(XdmLimitExceeded, match=r"declared total size exceeds") as caught:
        read_xdm(data, limits)
    assert caught.value.member == "R3.BIN"


def test_zip_bomb_with_lying_sizes_stops_at_the_declared_size() -> None:
    # The headers say 1000 bytes; the deflate stream holds 50 MiB of zeros.
    data = patch_entry(with_extra("BOMB.XML", bytes(50 * MiB)), "BOMB.XML", file_size=1000)
    started = time.monotonic()
    with pytest.raises(
        XdmLimitExceeded, match=r"more than the 1000 bytes its header declares"
    ) as caught:
        read_xdm(data)
    assert (caught.value.member, caught.value.field) == ("BOMB.XML", "file_size")
    assert time.monotonic() - started < 5


def test_zip_bomb_with_lying_sizes_caught_by_the_actual_ratio() -> None:
    limits = XdmLimits(ratio_floor=0)
    data = patch_entry(with_extra("BOMB.XML", bytes(50 * MiB)), "BOMB.XML", file_size=4 * MiB)
    with pytest.raises(XdmLimitExceeded, match=r"actual compression ratio above 100:1") as caught:
        read_xdm(data, limits)
    assert caught.value.member == "BOMB.XML"


def test_zip_bomb_with_lying_sizes_within_the_declared_total() -> None:
    # Declared: 1 MiB + 1 byte, within the 3 MiB total; actual: 30 MiB. The counter
    # stops at the first byte past the declared size, so the total is never reached.
    limits = XdmLimits(max_total_bytes=3 * MiB, max_ratio=10**9)
    data = make_zip([("A.BIN", bytes(30 * MiB)), ("B.BIN", b"b")])
    data = patch_entry(data, "A.BIN", file_size=MiB)
    with pytest.raises(XdmLimitExceeded, match=r"more than the 1048576 bytes") as caught:
        read_xdm(data, limits)
    assert (caught.value.member, caught.value.field) == ("A.BIN", "file_size")


def test_zip_bomb_many_lying_members() -> None:
    entries = [(f"B{i:03d}.XML", bytes(5 * MiB)) for i in range(20)]
    data = make_zip(entries)
    for name, _ in entries:
        data = patch_entry(data, name, file_size=512)
    started = time.monotonic()
    with pytest.raises(XdmLimitExceeded, match=r"header declares") as caught:
        read_xdm(data)
    assert caught.value.member == "B000.XML"
    assert time.monotonic() - started < 5


def test_too_many_entries() -> None:
    data = make_zip([(f"F{i:04d}.TXT", b"") for i in range(300)])
    with pytest.raises(XdmLimitExceeded, match=r"declares 300 entries, limit 256") as caught:
        read_xdm(data)
    assert caught.value.field == "entries"


def test_too_many_entries_with_a_lying_end_record() -> None:
    data = bytearray(make_zip([(f"F{i:04d}.TXT", b"") for i in range(300)]))
    eocd = data.rfind(b"PK\x05\x06")
    data[eocd + 8 : eocd + 12] = (5).to_bytes(2, "little") * 2
    with pytest.raises(XdmLimitExceeded, match=r"300 entries|does not fit"):
        read_xdm(bytes(data))


def test_archive_larger_than_the_limit() -> None:
    with pytest.raises(XdmLimitExceeded, match=r"exceeds the 1000-byte limit"):
        read_xdm(sample_zip(), XdmLimits(max_archive_bytes=1000))


def test_overlapping_members() -> None:
    data = patch_entry(sample_zip(), "INDEX.HTM", compress_size=5000)
    with pytest.raises(XdmUnsafe, match=r"overlaps") as caught:
        read_xdm(data)
    assert caught.value.member == "INDEX.HTM"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a zip",
        b"PK\x05\x06" + bytes(18),
        sample_zip()[:2000],
        sample_zip()[: len(sample_zip()) - 10],
    ],
)
def test_not_or_truncated_zip(data: bytes) -> None:
    with pytest.raises(XdmMalformed):
        read_xdm(data)


def test_corrupt_member_data() -> None:
    data = bytearray(sample_zip())
    pos = bytes(data).index(b"PK\x03\x04", 10)  # the second member's local header
    data[pos + 60 : pos + 64] = b"\xff\xff\xff\xff"
    with pytest.raises(XdmMalformed, match=r"README.TXT: (corrupt|CRC|deflate|decompresses)"):
        read_xdm(bytes(data))


XXE_META = (
    b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<r>&x;</r>'
)
LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">'
    b"]>\n<r>&c;</r>"
)
DTD_ONLY = b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ELEMENT r ANY>]>\n<r/>'


@pytest.mark.parametrize(
    ("xml", "match"),
    [(XXE_META, "external entity"), (LAUGHS, "entity expansion"), (DTD_ONLY, r"DOCTYPE \(DTD\)")],
)
def test_hostile_metadata(xml: bytes, match: str) -> None:
    with pytest.raises(XdmUnsafeXml, match=match) as caught:
        read_xdm(sample_with(metadata=xml))
    assert caught.value.member == META


@pytest.mark.parametrize(
    ("xml", "match"), [(XXE_META, "external entity"), (LAUGHS, "entity expansion")]
)
def test_hostile_cda(xml: bytes, match: str) -> None:
    meta = dict(members(sample_zip()))[META]
    meta = meta.replace(
        b"0790371801dfef401083bdc64b7a4990f2e50022",
        hashlib.sha1(xml, usedforsecurity=False).hexdigest().encode(),
    )
    meta = meta.replace(b"<rim:Value>8394<", f"<rim:Value>{len(xml)}<".encode())
    with pytest.raises(XdmUnsafeXml, match=match) as caught:
        read_xdm(sample_with(metadata=meta, document=xml))
    assert caught.value.member == DOC


def test_the_sample_passes_tight_but_fair_limits() -> None:
    limits = XdmLimits(
        max_archive_bytes=10_000,
        max_entries=4,
        max_entry_bytes=12_000,
        max_total_bytes=20_000,
        max_metadata_bytes=11_000,
    )
    assert read_xdm(sample_zip(), limits).ok
    assert read_xdm(
        replace_member(sample_zip(), "README.TXT", fixture("README.md")[:400]), limits
    ).ok
