"""METADATA.XML: the sample parses as expected, build and parse agree, bad XML is named."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.xdm import (
    Code,
    XdmLimitExceeded,
    XdmMalformed,
    XdmUnsafeXml,
    build_metadata,
    parse_metadata,
)
from gateway.xdm.metadata import DOCUMENT_ENTRY, Author
from tests.xdm import META, SAMPLE_XDS, members, sample_zip


def sample_metadata() -> bytes:
    return dict(members(sample_zip()))[META]


def test_sample_metadata_fields() -> None:
    sub = parse_metadata(sample_metadata(), member=META)
    (doc,) = sub.documents
    assert doc.hash == "0790371801dfef401083bdc64b7a4990f2e50022"
    assert doc.size == 8394
    assert doc.uri == "DOC0001.XML"
    assert doc.mime_type == "text/xml"
    assert doc.patient_id == doc.source_patient_id == SAMPLE_XDS
    assert doc.unique_id == "2.25.4562447655992894012391527622945477383"
    assert doc.creation_time == "20250314083000"
    assert doc.type_code == Code("34133-9", "2.16.840.1.113883.6.1", "Synthèse d'épisode de soins")
    assert doc.class_code == Code("11", "1.2.250.1.213.1.1.4.1", "Synthèse")
    assert doc.format_code is not None and doc.format_code.code == "urn:asip:ci-sis:dlu:2015"
    assert doc.practice_setting is not None and doc.practice_setting.code == "ESSMS"
    assert doc.authors[0].person.startswith("810990000043^MARTIN^Claire")
    sset = sub.submission_set
    assert sset.patient_id == SAMPLE_XDS
    assert sset.submission_time == "20250314084000"
    assert sset.intended_recipients[0].endswith("||^^Internet^urgences@ch-arras.mssante.fr")


def test_build_then_parse_gives_the_same_submission() -> None:
    sub = parse_metadata(sample_metadata())
    assert parse_metadata(build_metadata(sub)) == sub


def test_builder_escapes_markup() -> None:
    sub = parse_metadata(sample_metadata())
    doc = dataclasses.replace(
        sub.documents[0], title='<a href="x">&amp;</a>', authors=(Author(person="A&B^<C>"),)
    )
    again = parse_metadata(build_metadata(dataclasses.replace(sub, documents=(doc,))))
    assert again.documents[0].title == '<a href="x">&amp;</a>'
    assert again.documents[0].authors[0].person == "A&B^<C>"


def test_builder_refuses_characters_xml_cannot_carry() -> None:
    sub = parse_metadata(sample_metadata())
    doc = dataclasses.replace(sub.documents[0], title="bad\x01title")
    with pytest.raises(XdmMalformed, match=r"Name holds a character"):
        build_metadata(dataclasses.replace(sub, documents=(doc,)))


def test_split_uri_values_are_joined() -> None:
    data = sample_metadata().replace(
        b"<rim:Value>DOC0001.XML</rim:Value>",
        b"<rim:Value>2|0001.XML</rim:Value><rim:Value>1|DOC</rim:Value>",
    )
    assert parse_metadata(data).documents[0].uri == "DOC0001.XML"


@pytest.mark.parametrize(
    ("old", "new", "field", "match"),
    [
        (b'<rim:Slot name="hash">', b'<rim:Slot name="hush">', "hash", "missing slot 'hash'"),
        (
            b"<rim:Value>0790371801dfef401083bdc64b7a4990f2e50022<",
            b"<rim:Value>not-a-sha1<",
            "hash",
            "40 hexadecimal",
        ),
        (b"<rim:Value>8394<", b"<rim:Value>-1<", "size", "non-negative integer"),
        (b'<rim:Slot name="size">', b'<rim:Slot name="sighs">', "size", "missing slot 'size'"),
        (b'mimeType="text/xml"', b'mimeType=""', "mimeType", "missing mimeType"),
        (
            b'objectType="' + DOCUMENT_ENTRY.encode(),
            b'objectType="urn:uuid:x',
            "objectType",
            "not a stable XDSDocumentEntry",
        ),
        (b'<rim:Slot name="URI">', b'<rim:Slot name="URL">', "URI", "missing slot 'URI'"),
        (b'value="XDSDocumentEntry.patientId"', b'value="x"', None, None),
        (
            b"urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
            b"urn:uuid:0",
            "XDSDocumentEntry.patientId",
            "missing XDSDocumentEntry.patientId",
        ),
        (
            b"urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
            b"urn:uuid:0",
            "XDSDocumentEntry.uniqueId",
            "missing XDSDocumentEntry.uniqueId",
        ),
    ],
)
def test_bad_fields_are_named(old: bytes, new: bytes, field: str | None, match: str | None) -> None:
    data = sample_metadata()
    assert old in data
    if field is None:  # a label change alone is harmless
        parse_metadata(data.replace(old, new))
        return
    with pytest.raises(XdmMalformed, match=match) as caught:
        parse_metadata(data.replace(old, new, 1), member=META)
    assert caught.value.field == field
    assert caught.value.member == META
    assert "document entry 1" in caught.value.text


def test_wrong_root_and_empty_lists() -> None:
    with pytest.raises(XdmMalformed, match=r"not an ebRIM 3.0"):
        parse_metadata(b"<SubmitObjectsRequest/>")
    lcm = b'<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"'
    with pytest.raises(XdmMalformed, match=r"RegistryObjectList"):
        parse_metadata(lcm + b"/>")
    data = sample_metadata()
    start = data.index(b"    <rim:ExtrinsicObject")
    end = data.index(b"</rim:ExtrinsicObject>\n") + len(b"</rim:ExtrinsicObject>\n")
    with pytest.raises(XdmMalformed, match=r"no XDSDocumentEntry"):
        parse_metadata(data[:start] + data[end:])


def test_malformed_xml_is_named() -> None:
    with pytest.raises(XdmMalformed, match=r"malformed XML") as caught:
        parse_metadata(sample_metadata()[:-40], member=META)
    assert caught.value.member == META


XXE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lcm:SubmitObjectsRequest [\n'
    b'  <!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b'<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0">'
    b"&xxe;</lcm:SubmitObjectsRequest>"
)
LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n  <!ENTITY lol "lol">\n'
    + b"".join(
        f'  <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">\n'.replace(
            "&lol0;", "&lol;"
        ).encode()
        for i in range(1, 10)
    )
    + b"]>\n<lolz>&lol9;</lolz>"
)
DTD = b'<?xml version="1.0"?>\n<!DOCTYPE x SYSTEM "http://example.invalid/x.dtd">\n<x/>'
PARAM = (
    b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY % p SYSTEM "http://example.invalid/p">'
    b" %p;]>\n<x/>"
)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (XXE, "external entity"),
        (LAUGHS, "entity expansion"),
        (DTD, r"a DOCTYPE \(DTD\)"),
        (PARAM, "external entity"),
    ],
)
def test_hostile_xml_is_refused_with_a_clear_error(data: bytes, match: str) -> None:
    with pytest.raises(XdmUnsafeXml, match=match) as caught:
        parse_metadata(data, member=META)
    assert caught.value.member == META
    assert caught.value.field == "DOCTYPE"
    assert caught.value.reason == "xdm-unsafe"


def test_metadata_size_and_element_bounds() -> None:
    with pytest.raises(XdmLimitExceeded, match=r"exceeds the 100-byte limit"):
        parse_metadata(sample_metadata(), max_bytes=100)
    flood = b"<a>" + b"<b/>" * 250_000 + b"</a>"
    with pytest.raises(XdmLimitExceeded, match=r"more than 200000 elements"):
        parse_metadata(flood)
