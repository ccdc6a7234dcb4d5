"""The extraction parser on the samples: every defect named with its line and column."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directory.base import MailboxKind
from directory.extraction import (
    COLUMNS,
    ExtractionError,
    ParsedRow,
    RowError,
    parse_extraction,
)

FIX = Path(__file__).parent.parent / "fixtures" / "directory"
HEADER = "|".join(COLUMNS).encode() + b"\n"


def _parse(path: Path) -> list[ParsedRow | RowError]:
    with path.open("rb") as fh:
        return list(parse_extraction(fh))


def test_sample_parses_cleanly_with_demo_identities() -> None:
    rows = _parse(FIX / "extraction-sample.txt")
    assert len(rows) == 200 and all(isinstance(r, ParsedRow) for r in rows)
    by_addr = {r.entry.address: r.entry for r in rows if isinstance(r, ParsedRow)}
    nurse = by_addr["infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"]
    assert nurse.kind is MailboxKind.PER and nurse.display_name == "Mme Claire MARTIN"
    assert nurse.id_nat_pp == "810990000043" and nurse.structure_id == "1620000018"
    assert by_addr["dpi@ch-arras.mssante.fr"].kind is MailboxKind.APP
    assert by_addr["cabinet.petit@medecin.mssante.fr"].kind is MailboxKind.CAB
    assert by_addr["urgences@ch-arras.mssante.fr"].kind is MailboxKind.ORG
    assert by_addr["dr.paul.durand@ehpad-les-tilleuls.mssante.fr"].specialty_code == "SM18"
    assert "jean.petit2@medecin.mssante.fr" in by_addr


EXPECTED_DEFECTS = {
    4: (None, "30 instead of 31"),
    5: ("Adresse BAL", "missing address"),
    6: ("Adresse BAL", "not ASCII"),
    7: ("Adresse BAL", "duplicate address (first seen line 2)"),
    8: ("Type de BAL", "unknown BAL type 'PERS'"),
    9: ("Identifiant PP", "RPPS must have 11 digits, got 10"),
    10: ("Identifiant PP", "without PP identifiers"),
    11: ("Pays structure BAL", "CRLF"),
    12: (None, "32 instead of 31 (trailing '|')"),
    13: ("Nom d'exercice", "invalid UTF-8"),
}


def test_every_bad_row_is_named() -> None:
    rows = _parse(FIX / "extraction-bad.txt")
    errors = {r.line_no: r for r in rows if isinstance(r, RowError)}
    assert sorted(errors) == sorted(EXPECTED_DEFECTS)
    for line, (column, reason) in EXPECTED_DEFECTS.items():
        assert errors[line].column == column, errors[line]
        assert reason in errors[line].reason, errors[line]
    good = [r.line_no for r in rows if isinstance(r, ParsedRow)]
    assert good == [2, 3, 14, 15]


def test_wrong_header_is_refused() -> None:
    with pytest.raises(ExtractionError, match="line 1"):
        list(parse_extraction(io.BytesIO(b"a|b|c\nx|y|z\n")))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=20))
def test_parser_never_crashes_on_arbitrary_lines(lines: list[bytes]) -> None:
    for item in parse_extraction([HEADER, *lines]):
        assert isinstance(item, ParsedRow | RowError)
