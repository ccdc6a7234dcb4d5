"""The extraction parser on the samples: every defect named with its line and column."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from directory.base import MailboxKind
from directory.extraction import (
    COLUMNS,
    MAX_LINE,
    AddressIndex,
    ParsedRow,
    Record,
    RowError,
    iter_records,
    parse_extraction,
)
from tests.support.profiles import examples

FIX = Path(__file__).parent.parent / "fixtures" / "directory"
HEADER = "|".join(COLUMNS).encode() + b"\n"
GOOD = (
    b"ORG|urgences@ch-arras.mssante.fr||||1|1620100057|Urgences||||||||||O|"
    b"Centre Hospitalier d'Arras (d\xc3\xa9mo)||||57||AV|des Essais||62000 ARRAS|62000|62|FR\n"
)


def _parse(path: Path) -> list[ParsedRow | RowError]:
    with path.open("rb") as fh:
        return list(parse_extraction(fh))


def _errors(data: bytes) -> list[RowError]:
    return [r for r in iter_records(io.BytesIO(data)) if isinstance(r, RowError)]


def test_sample_parses_cleanly_with_demo_identities() -> None:
    rows = _parse(FIX / "extraction-sample.txt")
    assert len(rows) == 200 and all(isinstance(r, ParsedRow) for r in rows)
    by_addr = {r.entry.address: r.entry for r in rows if isinstance(r, ParsedRow)}
    nurse = by_addr["infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"]
    assert nurse.kind is MailboxKind.PER and nurse.display_name == "Mme Claire MARTIN"
    assert nurse.id_nat_pp == "810990000043" and nurse.structure_id == "1620000018"
    assert nurse.profession_code == "60" and nurse.profession_label == "Infirmier"
    assert nurse.postal_address == "12 R des Tilleuls\n62223 SAINT LAURENT BLANGY"
    assert (nurse.postcode, nurse.department) == ("62223", "62")
    doctor = by_addr["dr.paul.durand@ehpad-les-tilleuls.mssante.fr"]
    assert doctor.display_name == "Dr Paul DURAND"
    assert (doctor.specialty_code, doctor.specialty_label) == ("SM18", "Gériatrie")
    urgences = by_addr["urgences@ch-arras.mssante.fr"]
    assert urgences.kind is MailboxKind.ORG
    assert urgences.display_name == "Urgences — Centre Hospitalier d'Arras (démo)"
    assert urgences.structure_name == "Centre Hospitalier d'Arras (démo)"
    assert urgences.service == "Urgences" and urgences.id_nat_pp == ""
    assert by_addr["dpi@ch-arras.mssante.fr"].kind is MailboxKind.APP
    assert by_addr["cabinet.petit@medecin.mssante.fr"].kind is MailboxKind.CAB
    assert "jean.petit2@medecin.mssante.fr" in by_addr
    assert not any(e.liste_rouge for e in by_addr.values())


def test_records_and_entries_agree() -> None:
    with (FIX / "extraction-sample.txt").open("rb") as fh:
        records = [r for r in iter_records(fh) if isinstance(r, Record)]
    entries = [r.entry for r in _parse(FIX / "extraction-sample.txt") if isinstance(r, ParsedRow)]
    assert [r.entry() for r in records] == entries


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
    assert str(errors[5]) == "line 5: Adresse BAL: missing address"


def test_index_knows_the_accepted_addresses() -> None:
    index = AddressIndex()
    with (FIX / "extraction-bad.txt").open("rb") as fh:
        list(iter_records(fh, index))
    assert len(index) == 4
    assert "secretariat@ehpad-les-tilleuls.mssante.fr" in index
    assert "camille.roux@ch-arras.mssante.fr" not in index  # line 8: bad type, not accepted


def test_wrong_header_is_a_line_one_error_and_stops() -> None:
    errors = _errors(b"a|b|c\n" + GOOD)
    assert len(errors) == 1 and errors[0].line_no == 1 and "3 columns" in errors[0].reason
    renamed = HEADER.replace(b"Adresse BAL", b"Adresse")
    errors = _errors(renamed + GOOD)
    assert [(e.line_no, e.column) for e in errors] == [(1, "Adresse BAL")]
    assert _errors(b"") == [RowError(1, None, "empty file: no header line")]
    assert "not UTF-8" in _errors(b"\xff\xfe" + HEADER)[0].reason


def test_bom_is_tolerated_and_lf_less_last_line_is_read() -> None:
    items = list(iter_records(io.BytesIO(b"\xef\xbb\xbf" + HEADER + GOOD.rstrip(b"\n"))))
    assert [type(i) for i in items] == [Record]


def test_line_level_defects() -> None:
    cr = GOOD.replace(b"Urgences", b"Urg\rences")
    long_line = GOOD.rstrip(b"\n") + b"x" * (MAX_LINE + 10) + b"\n"
    errors = _errors(HEADER + b"\n" + cr + long_line + GOOD)
    assert [(e.line_no, e.column) for e in errors] == [
        (2, None),
        (3, "Service de rattachement"),
        (4, None),
    ]
    assert "empty line" in errors[0].reason and "stray CR" in errors[1].reason
    assert f"longer than {MAX_LINE}" in errors[2].reason


def test_overlong_line_from_an_iterable_of_lines() -> None:
    long_line = b"x" * (MAX_LINE + 1) + b"\n"
    items = list(iter_records([HEADER, long_line, GOOD]))
    assert isinstance(items[0], RowError) and items[0].line_no == 2
    assert isinstance(items[1], Record) and items[1].line_no == 3


def _with(column: str, value: bytes, row: bytes = GOOD) -> bytes:
    fields = row.rstrip(b"\n").split(b"|")
    fields[COLUMNS.index(column)] = value
    return b"|".join(fields) + b"\n"


def test_field_checks_name_their_column() -> None:
    cases = [
        _with("Adresse BAL", b"Urgences@ch-arras.mssante.fr"),
        _with("Adresse BAL", b"urgences@localhost"),
        _with("Type identifiant structure", b"9"),
        _with("Identification Structure", b"16201"),
        _with("Code postal structure BAL", b"62000-ARRAS-CEDEX"),
        _with("Service de rattachement", b"S" * 256),
    ]
    errors = _errors(HEADER + b"".join(cases))
    assert [e.column for e in errors] == [
        "Adresse BAL",
        "Adresse BAL",
        "Type identifiant structure",
        "Identification Structure",
        "Code postal structure BAL",
        "Service de rattachement",
    ]


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=2000))
def test_parser_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    for item in iter_records(io.BytesIO(data)):
        assert isinstance(item, RowError)  # no random file is a valid extraction


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=20))
def test_parser_never_raises_on_arbitrary_lines(lines: list[bytes]) -> None:
    data = HEADER + b"\n".join(lines)
    for item in parse_extraction(io.BytesIO(data)):
        assert isinstance(item, ParsedRow | RowError)
        assert item.line_no >= 2


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(
        st.sampled_from(COLUMNS).flatmap(
            lambda c: st.tuples(st.just(c), st.text(max_size=40).map(str.encode))
        ),
        max_size=5,
    )
)
def test_parser_never_raises_on_mutated_rows(mutations: list[tuple[str, bytes]]) -> None:
    row = GOOD
    for column, value in mutations:
        row = _with(column, value.replace(b"\n", b"").replace(b"|", b"/"), row)
    items = list(parse_extraction(io.BytesIO(HEADER + row)))
    assert len(items) >= 1 and all(isinstance(i, ParsedRow | RowError) for i in items)


def test_address_index_grows_and_remembers_first_lines() -> None:
    from directory.extraction import AddressIndex

    index = AddressIndex()  # starts small: 10,000 addresses make it grow twice
    for i in range(10_000):
        assert index.add(f"user{i}@ch-arras.mssante.fr", i + 2) is None
    assert len(index) == 10_000
    assert index.add("user0@ch-arras.mssante.fr", 20_000) == 2
    assert index.add("user9999@ch-arras.mssante.fr", 20_001) == 10_001
    assert "user5000@ch-arras.mssante.fr" in index
    assert "user10000@ch-arras.mssante.fr" not in index and 42 not in index
    assert len(index) == 10_000
