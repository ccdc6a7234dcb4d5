"""Reading an untrusted zip archive without trusting a single header: the zip-bomb defences.

It owns :class:`XdmLimits` and :func:`read_members`: the archive size, the
entry count (read from the end record before :mod:`zipfile` lists anything),
member names (no ``..``, absolute paths, backslashes, NUL or control
characters, drive letters, duplicates even by case, symbolic links),
encryption, compression methods (stored and deflate only: bzip2 and LZMA
allow far higher ratios), overlapping entries, local headers that disagree
with the central directory, nested archives, and — since headers lie — the
bytes actually decompressed, counted against the declared size, the
per-entry ratio and the archive total while inflating. Pure: bytes in,
``(name, bytes)`` out or an :class:`~gateway.xdm.errors.XdmError` naming the
member. It must never write to disk, never trust a declared size without
counting, and never decompress past a limit.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass

from gateway.xdm.errors import (
    XdmLimitExceeded,
    XdmMalformed,
    XdmUnsafe,
    XdmUnsafeName,
    shown,
)

__all__ = ["ZIP_MAGICS", "XdmLimits", "check_name", "read_members"]

MiB = 1024 * 1024
_EOCD = struct.Struct("<4s4H2LH")  # APPNOTE.TXT §4.3.16 end of central directory record
_LOCAL = struct.Struct("<4s5H3L2H")  # APPNOTE.TXT §4.3.7 local file header
_CHUNK = 64 * 1024
_MIN_CD_ENTRY = 46  # APPNOTE.TXT §4.3.12: fixed part of a central directory header
_CD_ENTRY_BUDGET = 1024  # bytes of central directory allowed per permitted entry
# Starts of zip archives (local header, empty archive, spanned) — a nested zip is refused.
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


@dataclass(frozen=True)
class XdmLimits:
    """Bounds on an untrusted package; the defaults fit MSSanté mail with room to spare.

    Why these numbers: MSSanté operators cap messages at a few tens of MB, so
    an XDM attachment above 64 MiB or expanding beyond 128 MiB is not mail.
    Real CDA/XML compresses 3-10:1; the ratio limit of 100 leaves a margin
    and only applies past ``ratio_floor`` bytes (tiny files compress oddly).
    """

    max_archive_bytes: int = 64 * MiB
    max_entries: int = 256
    max_entry_bytes: int = 64 * MiB
    max_total_bytes: int = 128 * MiB
    max_ratio: int = 100
    ratio_floor: int = MiB
    max_metadata_bytes: int = 8 * MiB
    max_name_length: int = 255


def check_name(name: str, max_length: int = 255) -> None:
    """Refuse a member name that could escape the extraction directory or mislead a reader."""
    # IHE ITI TF-2b §3.32.4.1: XDM names are relative paths on portable media.
    if not name or len(name) > max_length:
        raise XdmUnsafeName(
            f"member name {shown(name)} is empty or longer than {max_length}",
            member=shown(name),
            field="name",
        )
    problem = ""
    if "\x00" in name:
        problem = "contains NUL"
    elif not name.isprintable():
        problem = "contains a control or invisible formatting character"
    elif "\\" in name:
        problem = "contains a backslash (a Windows path separator)"
    elif name.startswith("/"):
        problem = "is an absolute path"
    elif len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        problem = "starts with a drive letter"
    elif ":" in name:
        problem = "contains ':' (alternate data streams, drive-relative paths)"
    else:
        parts = name.removesuffix("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            problem = "has an empty, '.' or '..' path component"
        elif any(p.split(".")[0].upper() in _WINDOWS_RESERVED for p in parts):
            problem = "uses a reserved Windows device name"
    if problem:
        raise XdmUnsafeName(f"member name {problem}", member=shown(name), field="name")


def _end_record(data: bytes) -> int:
    """Where the end of central directory record starts (found as zipfile finds it)."""
    pos = len(data) - _EOCD.size
    if pos < 0 or data[pos : pos + 4] != b"PK\x05\x06":
        pos = data.rfind(b"PK\x05\x06", max(0, len(data) - _EOCD.size - 0xFFFF))
    if pos < 0 or pos + _EOCD.size > len(data):
        raise XdmMalformed("not a zip archive (no end of central directory record)", field="zip")
    return pos


def _entry_count(data: bytes, limits: XdmLimits) -> None:
    """Bound the central directory from the end record, before zipfile parses it all."""
    _, disk, _, _, count, cd_size, _, _ = _EOCD.unpack_from(data, _end_record(data))
    if count == 0xFFFF or cd_size == 0xFFFFFFFF or disk == 0xFFFF:
        # Nothing within the limits needs ZIP64 structures at archive level.
        raise XdmUnsafe("ZIP64 archives are not accepted", field="zip")
    if count > limits.max_entries:
        raise XdmLimitExceeded(
            f"archive declares {count} entries, limit {limits.max_entries}", field="entries"
        )
    if cd_size > limits.max_entries * _CD_ENTRY_BUDGET or cd_size < count * _MIN_CD_ENTRY:
        raise XdmLimitExceeded(
            f"central directory of {cd_size} bytes does not fit {count} entries within the limits",
            field="entries",
        )


def _check_info(info: zipfile.ZipInfo, limits: XdmLimits) -> None:
    name = info.filename
    if info.flag_bits & 0x1:
        raise XdmUnsafe("member is encrypted", member=name, field="flags")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise XdmUnsafe(
            f"compression method {info.compress_type} is not accepted (stored or deflate only)",
            member=name,
            field="compress_type",
        )
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):
        raise XdmUnsafeName("member is a symbolic link", member=name, field="external_attr")
    if info.file_size > limits.max_entry_bytes:
        raise XdmLimitExceeded(
            f"declares {info.file_size} bytes, limit {limits.max_entry_bytes}",
            member=name,
            field="file_size",
        )
    if (
        info.file_size > limits.ratio_floor
        and info.file_size > info.compress_size * limits.max_ratio
    ):
        raise XdmLimitExceeded(
            f"declared compression ratio above {limits.max_ratio}:1",
            member=name,
            field="compress_size",
        )
    if info.is_dir() and info.file_size:
        raise XdmMalformed("directory entry with content", member=name, field="file_size")


def _list(data: bytes, limits: XdmLimits) -> list[zipfile.ZipInfo]:
    if len(data) > limits.max_archive_bytes:
        raise XdmLimitExceeded(
            f"archive of {len(data)} bytes exceeds the {limits.max_archive_bytes}-byte limit",
            field="size",
        )
    _entry_count(data, limits)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        ValueError,
        EOFError,
        OSError,
        NotImplementedError,
        struct.error,
        UnicodeDecodeError,
        IndexError,
    ) as exc:
        raise XdmMalformed(
            f"not a readable zip archive ({type(exc).__name__})", field="zip"
        ) from None
    if len(infos) > limits.max_entries:
        raise XdmLimitExceeded(
            f"archive has {len(infos)} entries, limit {limits.max_entries}", field="entries"
        )
    seen: dict[str, str] = {}
    declared = 0
    for info in infos:
        # orig_filename: zipfile cuts ZipInfo.filename at a NUL; the raw name is checked.
        check_name(info.orig_filename, limits.max_name_length)
        # Portable media and most desktops fold case: two names equal but for case collide.
        key = info.filename.removesuffix("/").casefold()
        if key in seen:
            raise XdmUnsafeName(
                f"duplicate of member {shown(seen[key])}", member=shown(info.filename), field="name"
            )
        seen[key] = info.filename
        _check_info(info, limits)
        declared += info.file_size
        if declared > limits.max_total_bytes:
            raise XdmLimitExceeded(
                f"declared total size exceeds {limits.max_total_bytes} bytes",
                member=info.filename,
                field="file_size",
            )
    return infos


def _raw(data: bytes, info: zipfile.ZipInfo, next_offset: int) -> bytes:
    """The compressed bytes of ``info``, after checking its local header agrees."""
    name = info.filename
    start = info.header_offset
    if start < 0 or start + _LOCAL.size > len(data):
        raise XdmMalformed("local header outside the archive", member=name, field="offset")
    fields = _LOCAL.unpack_from(data, start)
    if fields[0] != b"PK\x03\x04":
        raise XdmMalformed("bad local header signature", member=name, field="offset")
    flags, method, name_len, extra_len = fields[2], fields[3], fields[9], fields[10]
    local_name = data[start + _LOCAL.size : start + _LOCAL.size + name_len]
    # APPNOTE.TXT §4.4.4: bit 11 means UTF-8 names; otherwise CP437.
    expected = info.orig_filename.encode("utf-8" if flags & 0x800 else "cp437", "replace")
    if method != info.compress_type or bool(flags & 0x1) or local_name != expected:
        # Two readers could see two different files: zip smuggling.
        raise XdmUnsafe(
            "local header disagrees with the central directory (name, method or encryption)",
            member=name,
            field="local_header",
        )
    begin = start + _LOCAL.size + name_len + extra_len
    end = begin + info.compress_size
    if end > next_offset:
        raise XdmUnsafe(
            "member data overlaps the next entry or the central directory",
            member=name,
            field="compress_size",
        )
    return data[begin:end]


def _inflate(raw: bytes, info: zipfile.ZipInfo, limits: XdmLimits, budget: int) -> bytes:
    """Decompress ``raw``, counting output against every limit as it grows."""
    name = info.filename
    cap = min(limits.max_entry_bytes, budget)
    if info.compress_type == zipfile.ZIP_STORED:
        if len(raw) != info.file_size:
            raise XdmMalformed(
                "stored member size differs from its header", member=name, field="file_size"
            )
        out = raw
    else:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        parts: list[bytes] = []
        produced = 0
        pos = 0
        pending = b""
        try:
            while not inflater.eof:
                if not pending and pos < len(raw):
                    pending, pos = raw[pos : pos + _CHUNK], pos + _CHUNK
                piece = inflater.decompress(pending, _CHUNK)
                pending = inflater.unconsumed_tail
                if not piece and not pending and pos >= len(raw):
                    break  # no input left and no output: the stream is cut short
                produced += len(piece)
                parts.append(piece)
                consumed = pos - len(pending)
                if produced > cap:
                    which = "entry" if cap == limits.max_entry_bytes else "archive total"
                    raise XdmLimitExceeded(
                        f"decompresses past the {which} limit of {cap} bytes",
                        member=name,
                        field="file_size",
                    )
                if produced > limits.ratio_floor and produced > consumed * limits.max_ratio:
                    raise XdmLimitExceeded(
                        f"actual compression ratio above {limits.max_ratio}:1",
                        member=name,
                        field="compress_size",
                    )
                if produced > info.file_size:
                    raise XdmLimitExceeded(
                        f"decompresses to more than the {info.file_size} bytes its header declares",
                        member=name,
                        field="file_size",
                    )
        except zlib.error:
            raise XdmMalformed("corrupt deflate data", member=name, field="data") from None
        if not inflater.eof:
            raise XdmMalformed("deflate data is truncated", member=name, field="data")
        out = b"".join(parts)
    if len(out) != info.file_size:
        raise XdmMalformed(
            f"decompresses to {len(out)} bytes, header declares {info.file_size}",
            member=name,
            field="file_size",
        )
    if len(out) > cap:
        raise XdmLimitExceeded(f"exceeds the limit of {cap} bytes", member=name, field="file_size")
    if zlib.crc32(out) != info.CRC:
        raise XdmMalformed("CRC-32 mismatch", member=name, field="crc")
    return out


def read_members(data: bytes, limits: XdmLimits) -> dict[str, bytes]:
    """Every file member of the archive, checked and decompressed under ``limits``.

    Directory entries are left out. A member that is itself a zip archive is
    refused (nested archives hide content from every check done here).
    """
    infos = _list(data, limits)
    eocd = _end_record(data)
    cd_start = eocd - _EOCD.unpack_from(data, eocd)[5]  # end record - central directory size
    ordered = sorted(infos, key=lambda i: i.header_offset)
    bounds = {
        id(i): (ordered[n + 1].header_offset if n + 1 < len(ordered) else cd_start)
        for n, i in enumerate(ordered)
    }
    members: dict[str, bytes] = {}
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        content = _inflate(
            _raw(data, info, bounds[id(info)]), info, limits, limits.max_total_bytes - total
        )
        total += len(content)
        if content.startswith(ZIP_MAGICS) or info.filename.lower().endswith(".zip"):
            raise XdmUnsafe(
                "nested zip archives are not accepted", member=info.filename, field="content"
            )
        members[info.filename] = content
    return members
