"""The INS: key arithmetic (with Corsica's 2A/2B), OIDs, the XDS form and the CDA header."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.xdm import (
    INS_DEMO,
    INS_NIA,
    INS_NIR,
    INS_TEST,
    Ins,
    InvalidIns,
    NotCda,
    XdmUnsafeXml,
    compute_key,
    format_xds,
    ins_from_cda,
    ins_from_xds,
    parse_ins,
)
from gateway.xdm.ins import parse_xds_patient_id
from tests.support.profiles import examples
from tests.xdm import SAMPLE_INS, SAMPLE_XDS, fixture


def test_sample_key_is_97_minus_number_mod_97() -> None:
    assert 97 - 2310562999017 % 97 == 71
    assert compute_key("2310562999017") == 71
    ins = parse_ins(SAMPLE_INS, INS_TEST)
    assert (ins.number, ins.key, ins.value, ins.kind) == (
        "2310562999017",
        71,
        SAMPLE_INS,
        "INS-NIR test",
    )


def test_wrong_key_names_both_keys() -> None:
    with pytest.raises(InvalidIns, match=r"^key 72 does not match 71$") as caught:
        parse_ins("231056299901772")
    assert caught.value.field == "key"


@pytest.mark.parametrize(("dept", "digits"), [("2A", "19"), ("2B", "18")])
def test_corsica_counts_as_19_or_18(dept: str, digits: str) -> None:
    number = f"18501{dept}012345"
    expected = 97 - int(f"18501{digits}012345") % 97
    assert compute_key(number) == expected
    assert parse_ins(f"{number}{expected:02d}").value == f"{number}{expected:02d}"
    assert parse_ins(f"18501{dept.lower()}012345{expected:02d}").number == number
    with pytest.raises(InvalidIns, match=r"does not match"):
        parse_ins(f"{number}{(expected % 97) + 1:02d}")


def test_corsica_only_at_the_departement() -> None:
    with pytest.raises(InvalidIns, match=r"département character 7"):
        compute_key("185012C012345")
    with pytest.raises(InvalidIns, match=r"number character 2"):
        compute_key("1A5012A012345")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("23105629990177", "15 characters"),
        ("2310562999017711", "15 characters"),
        ("23105629990177X", "key .* not two digits"),
        ("2310562999X1771", "character 11 is not a digit"),
        ("", "got 0"),
    ],
)
def test_malformed_ins_is_named(text: str, match: str) -> None:
    with pytest.raises(InvalidIns, match=match):
        parse_ins(text)


def test_spaces_between_groups_are_ignored() -> None:
    assert parse_ins("2 31 05 62 999 017 71", INS_TEST).value == SAMPLE_INS


@pytest.mark.parametrize(
    ("oid", "kind"),
    [
        (INS_NIR, "INS-NIR"),
        (INS_NIA, "INS-NIA"),
        (INS_TEST, "INS-NIR test"),
        (INS_DEMO, "INS-NIR demo"),
    ],
)
def test_the_four_oids(oid: str, kind: str) -> None:
    ins = parse_ins(SAMPLE_INS, oid)
    assert ins.kind == kind
    assert format_xds(ins) == f"{SAMPLE_INS}^^^&{oid}&ISO^NH"
    assert ins_from_xds(format_xds(ins)) == ins


def test_unknown_oid_is_refused() -> None:
    with pytest.raises(InvalidIns, match=r"not an INS OID"):
        Ins("2310562999017", 71, "1.2.3")


def test_xds_form_of_the_sample() -> None:
    ins = ins_from_xds(SAMPLE_XDS)
    assert ins == parse_ins(SAMPLE_INS, INS_TEST)
    assert format_xds(ins) == SAMPLE_XDS
    assert ins_from_xds(f"{SAMPLE_INS}^^^&{INS_TEST}&ISO") == ins  # type code is optional


def test_xds_with_another_authority_is_not_an_ins() -> None:
    assert ins_from_xds("R-000342^^^&2.25.2081339&ISO^PI".replace("^PI", "")) is None


def test_xds_with_an_ins_oid_and_a_bad_key_is_refused() -> None:
    with pytest.raises(InvalidIns, match=r"key 72 does not match 71"):
        ins_from_xds(SAMPLE_XDS.replace("771^", "772^"))


@pytest.mark.parametrize(
    "text",
    [
        "231056299901771",
        "231056299901771^^^1.2.250.1.213.1.4.10",
        "^^^&1.2.3&ISO",
        "231056299901771^1^^&1.2.3&ISO",
        "231056299901771^^^&1.2.3&DNS",
        "231056299901771^^^&1.2.3&ISO^PI",
        "231056299901771^^^ns&1.2.3&ISO",
    ],
)
def test_malformed_xds_patient_id(text: str) -> None:
    with pytest.raises(InvalidIns) as caught:
        parse_xds_patient_id(text)
    assert caught.value.field == "patientId"


def test_ins_value_never_in_repr_or_messages() -> None:
    ins = parse_ins(SAMPLE_INS, INS_TEST)
    assert SAMPLE_INS not in repr(ins)
    assert "2310562999017" not in repr(ins)
    with pytest.raises(InvalidIns) as caught:
        parse_ins("231056299901772")
    assert "2310562999017" not in caught.value.text


@pytest.mark.parametrize("name", ["dlu-sample.xml", "crh-sample.xml"])
def test_ins_from_the_sample_cdas(name: str) -> None:
    assert ins_from_cda(fixture(name)) == parse_ins(SAMPLE_INS, INS_TEST)


def test_cda_with_a_bad_key_names_the_element() -> None:
    cda = fixture("dlu-sample.xml").replace(
        b'extension="231056299901771"', b'extension="231056299901772"'
    )
    with pytest.raises(InvalidIns, match=r"key 72 does not match 71") as caught:
        ins_from_cda(cda, member="DOC0001.XML")
    assert caught.value.member == "DOC0001.XML"
    assert caught.value.field == "recordTarget/patientRole/id"


def test_cda_without_ins() -> None:
    cda = fixture("dlu-sample.xml").replace(b'root="1.2.250.1.213.1.4.10"', b'root="2.25.1"')
    assert ins_from_cda(cda) is None


def test_cda_with_two_different_ins_is_refused() -> None:
    cda = fixture("dlu-sample.xml").replace(
        b'<id root="2.25.208133956694076277825538885431589601846" extension="R-000342"/>',
        f'<id root="{INS_NIR}" '
        f'extension="1850119012345{compute_key("1850119012345"):02d}"/>'.encode(),
    )
    with pytest.raises(InvalidIns, match=r"two different INS"):
        ins_from_cda(cda)


def test_not_a_cda() -> None:
    with pytest.raises(NotCda, match=r"not an HL7 CDA"):
        ins_from_cda(b"<html/>")


def test_xxe_in_a_cda_is_refused() -> None:
    cda = (
        b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
        b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&e;</title></ClinicalDocument>'
    )
    with pytest.raises(XdmUnsafeXml, match=r"external entity") as caught:
        ins_from_cda(cda, member="DOC0001.XML")
    assert caught.value.member == "DOC0001.XML"


@settings(max_examples=examples(200), deadline=None)
@given(st.integers(min_value=0, max_value=10**13 - 1), st.integers(min_value=0, max_value=99))
def test_only_the_computed_key_is_accepted(number: int, key: int) -> None:
    digits = f"{number:013d}"
    good = 97 - number % 97
    assert compute_key(digits) == good
    if key == good:
        assert parse_ins(f"{digits}{key:02d}").key == good
    else:
        with pytest.raises(InvalidIns, match=f"key {key:02d} does not match {good:02d}"):
            parse_ins(f"{digits}{key:02d}")
