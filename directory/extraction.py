"""Pure streaming parser of the MSSanté directory extraction (31 ``|``-separated columns).

It owns the file format: bytes in, one :class:`Record` (or :class:`ParsedRow`)
or :class:`RowError` out per line, in bounded memory (a line is read at most
16 KiB at a time; duplicates are tracked by 8-byte digests in an
:class:`AddressIndex`). Every defect is reported with its line number (the
header is line 1), the column and the reason, and parsing goes on; a bad
header is reported as a line-1 error and ends the parse. It never raises on
any input bytes and never touches a database, the network or the clock.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, NamedTuple

from directory.base import Entry, MailboxKind
from directory.searchtext import search_text

__all__ = [
    "COLUMNS",
    "MAX_LINE",
    "AddressIndex",
    "ParsedRow",
    "Record",
    "RowError",
    "iter_records",
    "parse_extraction",
]

COLUMNS = (
    "Type de BAL",
    "Adresse BAL",
    "Type Identifiant PP",
    "Identifiant PP",
    "Identification nationale PP",
    "Type identifiant structure",
    "Identification Structure",
    "Service de rattachement",
    "Civilité d'exercice",
    "Nom d'exercice",
    "Prénom d'exercice",
    "Catégorie profession",
    "Libellé de catégorie profession",
    "Code Profession",
    "Libellé Profession",
    "Code savoir-faire",
    "Libellé savoir-faire",
    "Dématérialisation",
    "Raison Sociale structure BAL",
    "Enseigne commerciale structure BAL",
    "L2COMPLEMENTLOCALISATION structure BAL",
    "L3COMPLEMENTDISTRIBUTION structure BAL",
    "L4NUMEROVOIE structure BAL",
    "L4COMPLEMENTNUMEROVOIE structure BAL",
    "NL4TYPEVOIE structure BAL",
    "L4LIBELLEVOIE structure BAL",
    "L5LIEUDITMENTION structure BAL",
    "L6LIGNEACHEMINEMENT structure BAL",
    "Code postal structure BAL",
    "Département structure BAL",
    "Pays structure BAL",
)
MAX_LINE = 16 * 1024  # bytes; a real row is < 1 KiB
_N = len(COLUMNS)
_KINDS = frozenset(k.value for k in MailboxKind)
# MSSanté extraction README: local part [a-z0-9]+([.-][a-z0-9]+)*, lower-case ASCII.
_LOCAL_RE = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")
_DOMAIN_RE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_DIGITS_RE = re.compile(r"[0-9]+")
_CIVILITE = {"DR": "Dr", "PR": "Pr", "MME": "Mme", "M": "M.", "": ""}
# Identification Structure = type + identifier: FINESS/SIREN 9, SIRET 14, RPPS-rang 13.
_STRUCTURE_LEN = {"1": 10, "2": 10, "3": 15, "4": 14}
# Longest accepted value per column (characters); the SQL columns are sized to these.
_MAX_CHARS = {
    9: 100,
    10: 100,
    13: 8,
    14: 128,
    15: 16,
    16: 128,
    7: 255,
    18: 255,
    19: 255,
    28: 10,
    29: 3,
}
_DISPLAY_MAX = 255
_DIGEST = 8


@dataclass(frozen=True, slots=True)
class RowError:
    """One defect: the line (header = 1), the column name if one is to blame, why."""

    line_no: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.column or '-'}: {self.reason}"


class Record(NamedTuple):
    """One valid row, flattened to the directory's stored fields (cheap to build)."""

    line_no: int
    address: str
    kind: str
    display_name: str
    id_nat_pp: str
    profession_code: str
    profession_label: str
    specialty_code: str
    specialty_label: str
    structure_id: str
    structure_name: str
    service: str
    postal_address: str
    postcode: str
    department: str

    def digest(self) -> str:
        """BLAKE2b-128 hex of the stored fields: a re-import rewrites only changed rows."""
        return hashlib.blake2b(
            ("\x1f".join(self[2:]) + "\x1fFalse\x1f").encode(), digest_size=16
        ).hexdigest()

    def search_text(self) -> str:
        """The folded words a directory search matches (see directory.searchtext)."""
        return search_text(
            (
                self.display_name,
                self.profession_label,
                self.specialty_label,
                self.structure_name,
                self.service,
                self.postal_address,
                self.postcode,
                self.address,
            )
        )

    def entry(self) -> Entry:
        return Entry(
            address=self.address,
            kind=MailboxKind(self.kind),
            display_name=self.display_name,
            id_nat_pp=self.id_nat_pp,
            profession_code=self.profession_code,
            profession_label=self.profession_label,
            specialty_code=self.specialty_code,
            specialty_label=self.specialty_label,
            structure_id=self.structure_id,
            structure_name=self.structure_name,
            service=self.service,
            postal_address=self.postal_address,
            postcode=self.postcode,
            department=self.department,
        )


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """One valid row as the rest of pli sees a mailbox."""

    line_no: int
    entry: Entry


class AddressIndex:
    """The addresses accepted so far, as 8-byte BLAKE2b digests with their first line.

    An open-addressing table in two flat arrays (8-byte digest, 4-byte line
    number), kept at most half full: far less memory than a dict of digests
    took for the 1M-row national file (docs/benchmarks.md). A digest collision
    (p ≈ 3e-8 at 1M addresses) would report a false duplicate. ``expected``
    sizes the table up front so that a big import never rehashes.
    """

    __slots__ = ("_count", "_keys", "_lines", "_mask")

    def __init__(self, expected: int = 0) -> None:
        size = 1 << 12
        while size < 2 * expected:
            size <<= 1
        self._alloc(size)
        self._count = 0

    def _alloc(self, size: int) -> None:
        self._keys = array("Q", [0]) * size
        self._lines = array("I", [0]) * size
        self._mask = size - 1

    def __len__(self) -> int:
        return self._count

    @staticmethod
    def _key(address: str) -> int:
        digest = hashlib.blake2b(address.encode(), digest_size=_DIGEST).digest()
        return int.from_bytes(digest, "little") or 1  # 0 marks an empty slot

    def _slot(self, key: int) -> int:
        keys, mask = self._keys, self._mask
        i = key & mask
        while True:
            k = keys[i]
            if k == key or k == 0:
                return i
            i = (i + 1) & mask

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        key = self._key(address)
        return self._keys[self._slot(key)] == key

    def add(self, address: str, line_no: int) -> int | None:
        """Record ``address`` at ``line_no``; return the earlier line if already seen."""
        key = self._key(address)
        i = self._slot(key)
        if self._keys[i] == key:
            return self._lines[i]
        self._keys[i], self._lines[i] = key, min(line_no, 0xFFFFFFFF)
        self._count += 1
        if 2 * self._count > len(self._keys):
            self._grow()
        return None

    def _grow(self) -> None:
        keys, lines = self._keys, self._lines
        self._alloc(2 * len(keys))
        for k, line in zip(keys, lines, strict=True):
            if k:
                i = self._slot(k)
                self._keys[i], self._lines[i] = k, line


def _lines(source: IO[bytes] | Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Raw lines with their LF, and whether the line was cut at MAX_LINE bytes."""
    readline = getattr(source, "readline", None)
    if readline is None:
        for raw in source:
            cut = len(raw) - raw.endswith(b"\n") > MAX_LINE
            yield (raw[:MAX_LINE] if cut else raw), cut
        return
    while raw := readline(MAX_LINE + 1):
        if len(raw) <= MAX_LINE or raw.endswith(b"\n"):
            yield raw, False
            continue
        rest = raw
        while rest and not rest.endswith(b"\n"):  # skip the rest of the overlong line
            rest = readline(MAX_LINE)
        yield raw, True


def _header_error(raw: bytes) -> RowError | None:
    if raw.startswith(b"\xef\xbb\xbf"):  # tolerate a BOM, although the format has none
        raw = raw[3:]
    try:
        names = raw.rstrip(b"\r\n").decode("utf-8").split("|")
    except UnicodeDecodeError as exc:
        return RowError(1, None, f"header is not UTF-8 (byte {exc.start}): not an extraction")
    if len(names) != _N:
        return RowError(
            1, None, f"header has {len(names)} columns instead of {_N}: not an MSSanté extraction"
        )
    for name, expected in zip(names, COLUMNS, strict=True):
        if name != expected:
            return RowError(1, expected, f"header column {name!r}, expected {expected!r}")
    return None


def _column_at(body: bytes, pos: int) -> str:
    return COLUMNS[min(body.count(b"|", 0, pos), _N - 1)]


def _check(f: list[str]) -> tuple[str, str] | None:
    """The first semantic defect of a 31-field row as (column, reason), or None."""
    if f[0] not in _KINDS:
        return COLUMNS[0], f"unknown BAL type {f[0][:20]!r} (PER, ORG, APP or CAB)"
    addr = f[1]
    if not addr:
        return COLUMNS[1], "missing address"
    if not addr.isascii():
        return COLUMNS[1], "address is not ASCII"
    local, at, domain = addr.partition("@")
    # RFC 5321 §4.5.3.1: local part ≤ 64 octets, path ≤ 254 here (the directory key).
    if (
        len(addr) > 254
        or len(local) > 64
        or not at
        or not _LOCAL_RE.fullmatch(local)
        or not _DOMAIN_RE.fullmatch(domain)
    ):
        return COLUMNS[1], f"malformed address {addr[:80]!r} (lower-case local@domain)"
    if f[0] == "PER":
        kind, ident, nat = f[2], f[3], f[4]
        if not (kind or ident or nat):
            return COLUMNS[3], "PER mailbox without PP identifiers (columns 3-5 empty)"
        if kind == "8":
            if len(ident) != 11 or not _DIGITS_RE.fullmatch(ident):
                return COLUMNS[3], f"RPPS must have 11 digits, got {len(ident)}"
        elif kind == "0":
            if len(ident) != 9 or not ident.isascii() or not ident.isalnum():
                return COLUMNS[3], f"ADELI must have 9 characters, got {len(ident)}"
        else:
            return COLUMNS[2], f"unknown PP identifier type {kind[:10]!r} (8 RPPS, 0 ADELI)"
        if nat != kind + ident:
            return COLUMNS[4], "national PP id is not the type followed by the identifier"
    stype, sid = f[5], f[6]
    if stype or sid:
        want = _STRUCTURE_LEN.get(stype)
        if want is None:
            return COLUMNS[5], f"unknown structure identifier type {stype[:10]!r} (1-4)"
        if len(sid) != want or not sid.startswith(stype) or not sid.isascii():
            return COLUMNS[6], (
                f"structure id must be type {stype} followed by the identifier,"
                f" {want} characters; got {len(sid)}"
            )
    if (
        len(f[28]) > 10
        or len(f[29]) > 3
        or len(f[13]) > 8
        or len(f[15]) > 16
        or len(f[7]) > 255
        or len(f[18]) > 255
        or len(f[19]) > 255
        or len(f[9]) > 100
        or len(f[10]) > 100
        or len(f[14]) > 128
        or len(f[16]) > 128
    ):
        for index, limit in _MAX_CHARS.items():
            if len(f[index]) > limit:
                return COLUMNS[index], f"longer than {limit} characters"
    return None


def _display_name(kind: str, f: list[str]) -> str:
    if kind == "PER":
        civ = _CIVILITE.get(f[8], f[8].capitalize())
        name = " ".join(filter(None, (civ, f[10], f[9])))
    else:
        org = f[19] or f[18]
        name = f"{f[7]} — {org}" if f[7] and org else (f[7] or org)
    return name if len(name) <= _DISPLAY_MAX else name[: _DISPLAY_MAX - 1] + "…"


def _postal(f: list[str]) -> str:
    l4 = " ".join(filter(None, (f[22], f[23], f[24], f[25])))
    return "\n".join(filter(None, (f[20], f[21], l4, f[26], f[27])))


def _row(line_no: int, raw: bytes, cut: bool, index: AddressIndex) -> Record | RowError:
    if cut:
        return RowError(line_no, None, f"line longer than {MAX_LINE} bytes")
    if raw.endswith(b"\r\n"):
        # A naive split would leave "FR\r" in the last column.
        return RowError(line_no, COLUMNS[-1], "stray CR: CRLF line ending (the file uses LF)")
    body = raw[:-1] if raw.endswith(b"\n") else raw
    if not body:
        return RowError(line_no, None, "empty line")
    cr = body.find(b"\r")
    if cr >= 0:
        return RowError(line_no, _column_at(body, cr), f"stray CR at byte {cr}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowError(
            line_no,
            _column_at(body, exc.start),
            f"invalid UTF-8 at byte {exc.start} (Latin-1 or Windows-1252?)",
        )
    f = text.split("|")
    if len(f) != _N:
        hint = " (trailing '|')" if len(f) == _N + 1 and f[-1] == "" else ""
        return RowError(line_no, None, f"wrong column count: {len(f)} instead of {_N}{hint}")
    problem = _check(f)
    if problem is not None:
        return RowError(line_no, *problem)
    first = index.add(f[1], line_no)
    if first is not None:
        return RowError(line_no, COLUMNS[1], f"duplicate address (first seen line {first})")
    kind = f[0]
    return Record(
        line_no,
        f[1],
        kind,
        _display_name(kind, f),
        f[4],
        f[13],
        f[14],
        f[15],
        f[16],
        f[6],
        f[19] or f[18],
        f[7],
        _postal(f),
        f[28],
        f[29],
    )


def iter_records(
    source: IO[bytes] | Iterable[bytes], index: AddressIndex | None = None
) -> Iterator[Record | RowError]:
    """Parse an extraction given as a binary file object (or an iterable of raw lines).

    ``index`` collects the accepted addresses (pass one to ask afterwards which
    addresses the file holds). A missing or wrong header is a line-1 error and
    nothing else is read.
    """
    index = AddressIndex() if index is None else index
    lines = _lines(source)
    first = next(lines, None)
    if first is None:
        yield RowError(1, None, "empty file: no header line")
        return
    header, cut = first
    problem = (
        RowError(1, None, f"header longer than {MAX_LINE} bytes") if cut else _header_error(header)
    )
    if problem is not None:
        yield problem
        return
    for line_no, (raw, cut) in enumerate(lines, start=2):
        yield _row(line_no, raw, cut, index)


def parse_extraction(
    source: IO[bytes] | Iterable[bytes], index: AddressIndex | None = None
) -> Iterator[ParsedRow | RowError]:
    """Like :func:`iter_records`, with each valid row as a directory :class:`Entry`."""
    for item in iter_records(source, index):
        yield item if isinstance(item, RowError) else ParsedRow(item.line_no, item.entry())
