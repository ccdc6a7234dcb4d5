"""XDM packages: the sample, build/read round trips, and each bad package's specific error."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile

import pytest

from gateway.xdm import (
    INS_NIR,
    INS_TEST,
    InvalidIns,
    XdmInconsistent,
    XdmIntegrityError,
    XdmMalformed,
    XdmUnsafeName,
    build_xdm,
    compute_key,
    inspect_xdm,
    mss_headers,
    parse_ins,
    read_xdm,
)
from tests.xdm import (
    DOC,
    META,
    SAMPLE_INS,
    SAMPLE_XDS,
    fixture,
    members,
    replace_member,
    sample_with,
    sample_zip,
)

OTHER_NUMBER = "1850119012345"
OTHER_INS = f"{OTHER_NUMBER}{compute_key(OTHER_NUMBER):02d}"


def metadata() -> bytes:
    return dict(members(sample_zip()))[META]


def test_the_sample_reads_and_validates() -> None:
    package = read_xdm(sample_zip())
    assert package.ok
    assert package.patient_ins == parse_ins(SAMPLE_INS, INS_TEST)
    (doc,) = package.documents
    assert doc.name == DOC
    assert doc.data == fixture("dlu-sample.xml")
    assert doc.declared_hash == doc.actual_hash == "0790371801dfef401083bdc64b7a4990f2e50022"
    assert doc.declared_size == 8394 and doc.hash_ok and doc.size_ok
    assert doc.type_code is not None and doc.type_code.code == "34133-9"
    assert set(package.members) == {"INDEX.HTM", "README.TXT", META, DOC}


def test_sample_headers_match_the_dlu_message() -> None:
    # ../messages/dlu-to-hospital.eml carries exactly these two headers.
    assert mss_headers(read_xdm(sample_zip())) == {"X-MSS-INS": "O", "X-MSS-CODECDA": "34133-9"}


def test_build_from_the_dlu_reproduces_the_sample_entry() -> None:
    built = read_xdm(build_xdm([("dlu-sample.xml", fixture("dlu-sample.xml"))]))
    sample = read_xdm(sample_zip())
    assert built.patient_ins == sample.patient_ins
    assert built.documents[0].type_code == sample.documents[0].type_code
    assert built.documents[0].data == sample.documents[0].data
    # Every metadata field but the generated entry id is the sample's.
    assert dataclasses.replace(built.documents[0].entry, entry_id="") == dataclasses.replace(
        sample.documents[0].entry, entry_id=""
    )
    names = [n for n, _ in members(build_xdm([("d", fixture("dlu-sample.xml"))]))]
    assert names == [n for n, _ in members(sample_zip())]


def test_build_read_round_trip_two_documents() -> None:
    dlu, crh = fixture("dlu-sample.xml"), fixture("crh-sample.xml")
    data = build_xdm([("dlu.xml", dlu), ("crh.xml", crh)])
    package = read_xdm(data)
    assert [d.data for d in package.documents] == [dlu, crh]
    assert [d.name for d in package.documents] == [DOC, "IHE_XDM/SUBSET01/DOC0002.XML"]
    assert [d.type_code.code for d in package.documents if d.type_code] == ["34133-9", "34112-3"]
    assert package.documents[1].entry.class_code is not None
    assert package.documents[1].entry.class_code.code == "10"
    assert mss_headers(package) == {"X-MSS-INS": "O", "X-MSS-CODECDA": "34133-9,34112-3"}
    assert {"INDEX.HTM", "README.TXT", META} <= set(package.members)
    assert build_xdm([("dlu.xml", dlu), ("crh.xml", crh)]) == data  # deterministic


def test_build_refuses_a_cda_without_ins_unless_given() -> None:
    cda = fixture("dlu-sample.xml").replace(b'root="1.2.250.1.213.1.4.10"', b'root="2.25.1"')
    with pytest.raises(InvalidIns, match=r"no INS"):
        build_xdm([("dlu.xml", cda)])
    ins = parse_ins(OTHER_INS, INS_NIR)
    package = read_xdm(build_xdm([("dlu.xml", cda)], ins=ins))
    assert package.patient_ins == ins


def test_build_refuses_contradicting_ins() -> None:
    with pytest.raises(XdmInconsistent, match=r"differs") as caught:
        build_xdm([("dlu.xml", fixture("dlu-sample.xml"))], ins=parse_ins(OTHER_INS))
    assert caught.value.member == "'dlu.xml'"
    other = fixture("crh-sample.xml").replace(
        f'root="{INS_TEST}" extension="{SAMPLE_INS}"'.encode(),
        f'root="{INS_TEST}" extension="{OTHER_INS}"'.encode(),
    )
    with pytest.raises(XdmInconsistent):
        build_xdm([("dlu.xml", fixture("dlu-sample.xml")), ("crh.xml", other)])


def test_build_refuses_non_cda_and_empty() -> None:
    with pytest.raises(XdmMalformed, match=r"not an HL7 CDA"):
        build_xdm([("report.xml", b"<report/>")])
    with pytest.raises(XdmMalformed, match=r"no document"):
        build_xdm([])


def test_hash_mismatch_names_the_document() -> None:
    doc = fixture("dlu-sample.xml").replace(b"Aucun.", b"Rien..")
    assert len(doc) == 8394
    with pytest.raises(XdmIntegrityError, match=r"does not match the declared hash") as caught:
        read_xdm(sample_with(document=doc))
    assert (caught.value.member, caught.value.field) == (DOC, "hash")
    package = inspect_xdm(sample_with(document=doc))
    assert not package.ok and not package.documents[0].hash_ok
    assert package.documents[0].size_ok
    assert mss_headers(package)["X-MSS-INS"] == "N"


def test_size_mismatch_names_the_document() -> None:
    meta = metadata().replace(b"<rim:Value>8394<", b"<rim:Value>8395<")
    with pytest.raises(
        XdmIntegrityError,
        match=r"size 8394 does not match the declared "
        "size 8395",
    ) as caught:
        read_xdm(sample_with(metadata=meta))
    assert (caught.value.member, caught.value.field) == (DOC, "size")


def test_bad_ins_key_in_metadata() -> None:
    meta = metadata().replace(b"901771^^^", b"901772^^^")
    with pytest.raises(InvalidIns, match=r"key 72 does not match 71") as caught:
        read_xdm(sample_with(metadata=meta))
    assert caught.value.member == META
    assert "XDSDocumentEntry.patientId" in caught.value.text


def test_cda_ins_must_match_metadata() -> None:
    doc = fixture("dlu-sample.xml").replace(SAMPLE_INS.encode(), OTHER_INS.encode())
    meta = metadata().replace(
        b"0790371801dfef401083bdc64b7a4990f2e50022",
        hashlib.sha1(doc, usedforsecurity=False).hexdigest().encode(),
    )
    with pytest.raises(XdmInconsistent, match=r"recordTarget INS differs") as caught:
        read_xdm(sample_with(metadata=meta, document=doc))
    assert caught.value.member == DOC


def test_ins_must_be_the_same_across_documents() -> None:
    dlu, crh = fixture("dlu-sample.xml"), fixture("crh-sample.xml")
    data = build_xdm([("dlu.xml", dlu), ("crh.xml", crh)])
    other = crh.replace(SAMPLE_INS.encode(), OTHER_INS.encode())
    meta = dict(members(data))[META]
    first = meta.index(b"<rim:ExtrinsicObject", meta.index(b"<rim:ExtrinsicObject") + 1)
    tail = (
        meta[first:]
        .replace(SAMPLE_INS.encode(), OTHER_INS.encode())
        .replace(
            hashlib.sha1(crh, usedforsecurity=False).hexdigest().encode(),
            hashlib.sha1(other, usedforsecurity=False).hexdigest().encode(),
        )
    )
    data = replace_member(
        replace_member(data, META, meta[:first] + tail), "IHE_XDM/SUBSET01/DOC0002.XML", other
    )
    with pytest.raises(
        XdmInconsistent, match=r"differs from the package's first document"
    ) as caught:
        read_xdm(data)
    assert caught.value.member == "IHE_XDM/SUBSET01/DOC0002.XML"
    assert mss_headers(inspect_xdm(data))["X-MSS-INS"] == "N"


def test_submission_set_patient_must_match() -> None:
    meta = metadata()
    at = meta.index(b'value="231056299901771^^^')
    meta = meta[:at] + meta[at:].replace(SAMPLE_INS.encode(), OTHER_INS.encode(), 1)
    with pytest.raises(XdmInconsistent, match=r"XDSSubmissionSet.patientId differs"):
        read_xdm(sample_with(metadata=meta))


def test_non_ins_patient_id() -> None:
    meta = metadata().replace(
        SAMPLE_XDS.replace("&", "&amp;").encode(), b"R-000342^^^&amp;2.25.1&amp;ISO"
    )
    data = sample_with(metadata=meta)
    with pytest.raises(InvalidIns, match=r"not an INS") as caught:
        read_xdm(data)
    assert caught.value.member == DOC
    package = read_xdm(data, require_ins=False)
    assert package.patient_ins is None
    assert mss_headers(package) == {"X-MSS-INS": "N", "X-MSS-CODECDA": "34133-9"}


def test_missing_metadata() -> None:
    with pytest.raises(XdmMalformed, match=r"no IHE_XDM/SUBSETnn/METADATA.XML") as caught:
        read_xdm(replace_member(sample_zip(), META, None))
    assert caught.value.field == "METADATA.XML"


def test_uri_naming_no_member() -> None:
    with pytest.raises(XdmMalformed, match=r"'DOC0001.XML' is not in the package"):
        read_xdm(replace_member(sample_zip(), DOC, None))


@pytest.mark.parametrize(
    "uri", [b"../../etc/passwd", b"/etc/passwd", b"..\\DOC0001.XML", b"C:DOC0001.XML"]
)
def test_uri_traversal_in_metadata(uri: bytes) -> None:
    meta = metadata().replace(b"<rim:Value>DOC0001.XML<", b"<rim:Value>" + uri + b"<")
    with pytest.raises(XdmUnsafeName, match=r"URI .*member name") as caught:
        read_xdm(sample_with(metadata=meta))
    assert (caught.value.member, caught.value.field) == (META, "URI")


def test_uri_pointing_at_the_metadata() -> None:
    meta = metadata().replace(b"<rim:Value>DOC0001.XML<", b"<rim:Value>METADATA.XML<")
    with pytest.raises(XdmMalformed, match=r"share member"):
        read_xdm(sample_with(metadata=meta))


def test_uri_case_is_folded_like_portable_media() -> None:
    meta = metadata().replace(b"<rim:Value>DOC0001.XML<", b"<rim:Value>doc0001.xml<")
    assert read_xdm(sample_with(metadata=meta)).documents[0].name == DOC


def test_two_subsets() -> None:
    entries = members(sample_zip())
    entries += [(n.replace("SUBSET01", "SUBSET02"), d) for n, d in entries if "SUBSET01" in n]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    package = read_xdm(out.getvalue())
    assert [d.name for d in package.documents] == [DOC, "IHE_XDM/SUBSET02/DOC0001.XML"]
    assert len(package.submissions) == 2
