"""Pure streaming parser of the MSSanté directory extraction (31 ``|``-separated columns).

Bytes in, one :class:`ParsedRow` or :class:`RowError` out per line, in
constant memory (duplicates are tracked by 8-byte digests). Every defect is
reported with its line number (the header is line 1), the column and the
reason, and parsing goes on: the caller decides how many errors it tolerates.
This module never touches a database or the network.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from directory.base import DirectoryError, Entry, MailboxKind

__all__ = ["COLUMNS", "ExtractionError", "ParsedRow", "RowError", "parse_extraction"]

COLUMNS = (
    "Type de BAL", "Adresse BAL", "Type Identifiant PP", "Identifiant PP",
    "Identification nationale PP", "Type identifiant structure", "Identification Structure",
    "Service de rattachement", "Civilité d'exercice", "Nom d'exercice", "Prénom d'exercice",
    "Catégorie profession", "Libellé de catégorie profession", "Code Profession",
    "Libellé Profession", "Code savoir-faire", "Libellé savoir-faire", "Dématérialisation",
    "Raison Sociale structure BAL", "Enseigne commerciale structure BAL",
    "L2COMPLEMENTLOCALISATION structure BAL", "L3COMPLEMENTDISTRIBUTION structure BAL",
    "L4NUMEROVOIE structure BAL", "L4COMPLEMENTNUMEROVOIE structure BAL",
    "NL4TYPEVOIE structure BAL", "L4LIBELLEVOIE structure BAL",
    "L5LIEUDITMENTION structure BAL", "L6LIGNEACHEMINEMENT structure BAL",
    "Code postal structure BAL", "Département structure BAL", "Pays structure BAL",
)
_N = len(COLUMNS)
_LOCAL_RE = re.compile(r"^[a-z0-9]+([.-][a-z0-9]+)*$")
_DOMAIN_RE = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_MAX_LINE = 16 * 1024


class ExtractionError(DirectoryError):
    """The file as a whole cannot be read as an extraction (e.g. wrong header)."""


@dataclass(frozen=True, slots=True)
class ParsedRow:
    line_no: int
    entry: Entry


@dataclass(frozen=True, slots=True)
class RowError:
    line_no: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.column or '-'}: {self.reason}"


def _display_name(kind: MailboxKind, f: list[str]) -> str:
    if kind is MailboxKind.PER:
        civ = {"DR": "Dr", "PR": "Pr", "MME": "Mme", "M": "M."}.get(f[8], "")
        return " ".join(x for x in (civ, f[10], f[9]) if x)
    org = f[19] or f[18]
    return f"{f[7]} — {org}" if f[7] and org else (f[7] or org)


def _postal(f: list[str]) -> str:
    l4 = " ".join(x for x in (f[22], f[23], f[24], f[25]) if x)
    return "\n".join(x for x in (f[20], f[21], l4, f[26], f[27]) if x)


def _check(f: list[str]) -> tuple[str, str] | None:
    """The first semantic defect of a 31-field row as (column, reason), or None."""
    if f[0] not in MailboxKind.__members__:
        return COLUMNS[0], f"unknown BAL type {f[0]!r} (PER, ORG, APP or CAB)"
    addr = f[1]
    if not addr:
        return COLUMNS[1], "missing address"
    if not addr.isascii():
        return COLUMNS[1], "address is not ASCII"
    local, at, domain = addr.partition("@")
    if not at or not _LOCAL_RE.match(local) or not _DOMAIN_RE.match(domain):
        return COLUMNS[1], f"malformed address {addr!r}"
    if f[0] == "PER":
        if not (f[2] and f[3] and f[4]):
            return COLUMNS[3], "PER mailbox without PP identifiers (columns 3-5)"
        if f[2] == "8" and not (len(f[3]) == 11 and f[3].isdigit()):
            return COLUMNS[3], f"RPPS must have 11 digits, got {len(f[3])}"
        if f[2] == "0" and not (len(f[3]) == 9 and f[3].isalnum()):
            return COLUMNS[3], f"ADELI must have 9 characters, got {len(f[3])}"
        if f[2] not in ("0", "8"):
            return COLUMNS[2], f"unknown PP identifier type {f[2]!r} (8 RPPS, 0 ADELI)"
        if f[4] != f[2] + f[3]:
            return COLUMNS[4], "national id is not type + identifier"
    if f[5] and f[5] not in ("1", "2", "3", "4"):
        return COLUMNS[5], f"unknown structure identifier type {f[5]!r}"
    return None


def _entry(f: list[str]) -> Entry:
    kind = MailboxKind(f[0])
    return Entry(
        address=f[1], kind=kind, display_name=_display_name(kind, f), id_nat_pp=f[4],
        profession_code=f[13], profession_label=f[14], specialty_code=f[15],
        specialty_label=f[16], structure_id=f[6], structure_name=f[19] or f[18],
        service=f[7], postal_address=_postal(f), postcode=f[28], department=f[29],
    )


def parse_extraction(lines: Iterable[bytes]) -> Iterator[ParsedRow | RowError]:
    """Parse an extraction given as an iterable of raw lines (a binary file object).

    Raises :class:`ExtractionError` only when the header is not an extraction's.
    """
    seen: dict[bytes, int] = {}
    it = iter(lines)
    header = next(it, b"")
    if header.startswith(b"\xef\xbb\xbf"):
        header = header[3:]
    if header.rstrip(b"\r\n").decode("utf-8", "replace").split("|") != list(COLUMNS):
        raise ExtractionError(
            "line 1: not an MSSanté extraction header (31 columns starting 'Type de BAL')")
    for line_no, raw in enumerate(it, start=2):
        if len(raw) > _MAX_LINE:
            yield RowError(line_no, None, f"line longer than {_MAX_LINE} bytes")
            continue
        if raw.endswith(b"\r\n"):
            yield RowError(line_no, COLUMNS[-1], "stray CR: CRLF line ending (file uses LF)")
            continue
        body = raw[:-1] if raw.endswith(b"\n") else raw
        if not body.strip():
            continue
        if b"\r" in body:
            yield RowError(line_no, None, "stray CR inside the line")
            continue
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            col = COLUMNS[min(body[: exc.start].count(b"|"), _N - 1)]
            yield RowError(line_no, col, f"invalid UTF-8 at byte {exc.start}")
            continue
        fields = text.split("|")
        if len(fields) != _N:
            hint = " (trailing '|')" if len(fields) == _N + 1 and fields[-1] == "" else ""
            yield RowError(line_no, None,
                           f"wrong column count: {len(fields)} instead of {_N}{hint}")
            continue
        problem = _check(fields)
        if problem is not None:
            yield RowError(line_no, *problem)
            continue
        key = hashlib.blake2b(fields[1].encode(), digest_size=8).digest()
        first = seen.get(key)
        if first is not None:
            yield RowError(line_no, COLUMNS[1],
                           f"duplicate address (first seen line {first})")
            continue
        seen[key] = line_no
        yield ParsedRow(line_no, _entry(fields))
