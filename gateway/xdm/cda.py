"""The HL7 CDA R2 header as XDS metadata needs it, and the French value tables that map it.

It owns reading a CDA document's header (never its body) into a frozen
:class:`CdaHeader` — patient INS, document code, template ids, author,
recipient, times — and turning it into a :class:`~gateway.xdm.metadata.DocumentEntry`
the way the sample package does (class code from the LOINC type code, format
code from the template id, practice setting from the facility type). The
tables hold plausible CI-SIS values, not a checked copy of the national value
sets, so codes outside them fall back to generic values instead of failing.
Pure: bytes in, values out; XML through :mod:`gateway.xdm.safexml` only; it
must never interpret clinical content.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET  # the Element type only: parsing goes through defusedxml
from dataclasses import dataclass

from gateway.xdm.errors import InvalidIns, NotCda, XdmMalformed, shown
from gateway.xdm.ins import V3, Ins, format_xds, ins_from_ids
from gateway.xdm.metadata import Author, Code, DocumentEntry
from gateway.xdm.safexml import parse_xml

__all__ = ["CdaHeader", "document_entry", "read_cda_header", "xds_time"]

OID_IDNPS = "1.2.250.1.71.4.2.1"  # MSSanté: national id of a professional
OID_IDNST = "1.2.250.1.71.4.2.2"  # MSSanté: national id of a structure
# CI-SIS (TRE_A06-FormatCode): CDA templateId -> XDS formatCode.
_FORMATS = {
    "1.2.250.1.213.1.1.1.22": Code(
        "urn:asip:ci-sis:dlu:2015", "1.2.250.1.213.1.1.4.2.282", "Document de liaison d'urgence"
    ),
}
_FORMAT_FALLBACK = Code(
    "urn:ihe:iti:xds:2017:mimeTypeSufficient", "1.3.6.1.4.1.19376.1.2.3", "Format MIME suffisant"
)
# CI-SIS (TRE_A03-ClasseDocument): LOINC typeCode -> classCode.
_CLASS_SCHEME = "1.2.250.1.213.1.1.4.1"
_CLASSES = {"34133-9": ("11", "Synthèse"), "34112-3": ("10", "Compte rendu")}
_CLASS_FALLBACK = ("10", "Compte rendu")
# CI-SIS (TRE_A01-CadreExercice): healthcareFacilityTypeCode -> practiceSettingCode.
_PRACTICE_SCHEME = "1.2.250.1.213.1.1.4.9"
_PRACTICE = {"SA17": ("ESSMS", "Etablissement ou Service Social ou Médico-Social")}
_PRACTICE_FALLBACK = ("ETABLISSEMENT", "Etablissement de santé")
_CONFIDENTIALITY = {"N": "Normal", "R": "Restreint", "V": "Très restreint"}
_MAX_ELEMENTS = 20_000  # a header has a few hundred elements; the body is not read


@dataclass(frozen=True)
class CdaHeader:
    """What XDS metadata takes from a CDA header; empty strings where the CDA is silent."""

    ins: Ins | None
    unique_id: str
    code: Code | None
    title: str
    effective_time: str
    template_ids: tuple[str, ...]
    confidentiality: str
    language: str
    service_start: str
    facility: Code | None
    author: Author | None
    legal_authenticator: str
    recipients: tuple[str, ...]
    patient_info: tuple[str, ...]


def xds_time(ts: str) -> str:
    """CDA TS (``YYYYMMDDhhmmss+hhmm`` or shorter) -> XDS UTC ``YYYYMMDD[hhmmss]``.

    # IHE ITI TF-3 §4.2.3.1.7: XDS times are UTC, truncated, no offset.
    """
    ts = ts.strip()
    stamp, sign, zone = ts, "", ""
    for sep in ("+", "-"):
        if sep in ts[8:]:
            stamp, sign, zone = ts.partition(sep)
    digits = stamp.split(".")[0]
    if not (digits.isascii() and digits.isdigit() and len(digits) in (4, 6, 8, 10, 12, 14)):
        return ""
    if not sign or len(digits) < 10:
        return digits
    if not (len(zone) == 4 and zone.isascii() and zone.isdigit()):
        return ""
    try:
        local = dt.datetime.strptime(digits.ljust(14, "0"), "%Y%m%d%H%M%S")
    except ValueError:
        return ""
    offset = dt.timedelta(hours=int(zone[:2]), minutes=int(zone[2:]))
    utc = local - offset if sign == "+" else local + offset
    return utc.strftime("%Y%m%d%H%M%S")[: len(digits)]


def _find(node: ET.Element | None, path: str) -> ET.Element | None:
    return node.find(path.replace("v3:", V3)) if node is not None else None


def _text(node: ET.Element | None, path: str) -> str:
    found = _find(node, path)
    return "".join(found.itertext()).strip() if found is not None else ""


def _attr(node: ET.Element | None, path: str, name: str) -> str:
    found = _find(node, path)
    return found.get(name, "").strip() if found is not None else ""


def _code(node: ET.Element | None, path: str) -> Code | None:
    found = _find(node, path)
    if found is None or not found.get("code"):
        return None
    return Code(found.get("code", ""), found.get("codeSystem", ""), found.get("displayName", ""))


def _xcn(entity: ET.Element | None) -> str:
    """assignedAuthor/assignedEntity -> HL7 v2 XCN with the IDNPS id (as in the sample)."""
    if entity is None:
        return ""
    ident = next(
        (i.get("extension", "") for i in entity.findall(f"{V3}id") if i.get("root") == OID_IDNPS),
        "",
    )
    name = _find(entity, "v3:assignedPerson/v3:name")
    return (
        f"{ident}^{_text(name, 'v3:family')}^{_text(name, 'v3:given')}"
        f"^^^{_text(name, 'v3:prefix')}^^^&{OID_IDNPS}&ISO^D^^^IDNPS"
    )


def _xon(org: ET.Element | None) -> str:
    if org is None:
        return ""
    return (
        f"{_text(org, 'v3:name')}^^^^^&{OID_IDNST}&ISO^IDNST^^^{_attr(org, 'v3:id', 'extension')}"
    )


def _author(root: ET.Element) -> Author | None:
    assigned = _find(root, "v3:author/v3:assignedAuthor")
    if assigned is None:
        return None
    code = _code(assigned, "v3:code")
    telecom = _attr(assigned, "v3:telecom", "value").removeprefix("mailto:")
    org = _find(assigned, "v3:representedOrganization")
    return Author(
        person=_xcn(assigned),
        institutions=(_xon(org),) if org is not None else (),
        specialties=((f"{code.code}^{code.display}^{code.scheme}",) if code else ()),
        telecoms=(f"^^Internet^{telecom}",) if telecom else (),
    )


def _recipients(root: ET.Element) -> tuple[str, ...]:
    out = []
    for rec in root.iterfind(f"{V3}informationRecipient/{V3}intendedRecipient"):
        org = _find(rec, "v3:receivedOrganization")
        mail = _attr(rec, "v3:telecom", "value").removeprefix("mailto:")
        out.append(f"{_xon(org)}||^^Internet^{mail}" if mail else _xon(org))
    return tuple(r for r in out if r)


def _stop_at_body(tag: str, depth: int) -> bool:
    return depth == 1 and tag == f"{V3}component"


def read_cda_header(
    data: bytes, *, member: str = "CDA", max_bytes: int = 32 * 1024 * 1024
) -> CdaHeader:
    """The :class:`CdaHeader` of a CDA R2 document; raises :class:`NotCda` for other XML."""
    root = parse_xml(
        data, member=member, max_bytes=max_bytes, max_elements=_MAX_ELEMENTS, stop=_stop_at_body
    )
    if root.tag != f"{V3}ClinicalDocument":
        raise NotCda(
            f"root element {shown(root.tag)} is not an HL7 CDA R2 ClinicalDocument",
            member=member,
            field="ClinicalDocument",
        )
    ids = [
        (i.get("root", ""), i.get("extension", ""))
        for i in root.iterfind(f"{V3}recordTarget/{V3}patientRole/{V3}id")
    ]
    try:
        ins = ins_from_ids(ids)
    except InvalidIns as exc:
        raise InvalidIns(exc.text, member=member, field="recordTarget/patientRole/id") from None
    doc_id = _find(root, "v3:id")
    if doc_id is None or not doc_id.get("root"):
        raise XdmMalformed(
            "the CDA has no id/@root (the document's unique id)", member=member, field="id"
        )
    ext = doc_id.get("extension", "")
    patient = _find(root, "v3:recordTarget/v3:patientRole/v3:patient")
    info = tuple(
        v
        for v in (
            f"PID-5|{_text(patient, 'v3:name/v3:family')}^{_text(patient, 'v3:name/v3:given')}"
            "^^^^^L"
            if patient is not None
            else "",
            f"PID-7|{_attr(patient, 'v3:birthTime', 'value')}" if patient is not None else "",
            f"PID-8|{_attr(patient, 'v3:administrativeGenderCode', 'code')}"
            if patient is not None
            else "",
        )
        if v
    )
    return CdaHeader(
        ins=ins,
        unique_id=doc_id.get("root", "") + (f"^{ext}" if ext else ""),
        code=_code(root, "v3:code"),
        title=_text(root, "v3:title"),
        effective_time=xds_time(_attr(root, "v3:effectiveTime", "value")),
        template_ids=tuple(t.get("root", "") for t in root.findall(f"{V3}templateId")),
        confidentiality=_attr(root, "v3:confidentialityCode", "code"),
        language=_attr(root, "v3:languageCode", "code"),
        service_start=xds_time(
            _attr(root, "v3:documentationOf/v3:serviceEvent/v3:effectiveTime/v3:low", "value")
        ),
        facility=_code(
            root,
            "v3:componentOf/v3:encompassingEncounter/v3:location/v3:healthCareFacility/v3:code",
        ),
        author=_author(root),
        legal_authenticator=_xcn(_find(root, "v3:legalAuthenticator/v3:assignedEntity")),
        recipients=_recipients(root),
        patient_info=info,
    )


def document_entry(
    header: CdaHeader, *, entry_id: str, uri: str, digest: str, size: int, ins: Ins
) -> DocumentEntry:
    """The XDSDocumentEntry of a CDA document, patientId = the INS in XDS form."""
    patient_id = format_xds(ins)
    fmt = next((_FORMATS[t] for t in header.template_ids if t in _FORMATS), _FORMAT_FALLBACK)
    cls = _CLASSES.get(header.code.code, _CLASS_FALLBACK) if header.code else _CLASS_FALLBACK
    facility = header.facility
    practice = _PRACTICE.get(facility.code if facility else "", _PRACTICE_FALLBACK)
    conf = header.confidentiality or "N"
    return DocumentEntry(
        entry_id=entry_id,
        unique_id=header.unique_id,
        uri=uri,
        hash=digest,
        size=size,
        mime_type="text/xml",
        patient_id=patient_id,
        source_patient_id=patient_id,
        source_patient_info=(f"PID-3|{patient_id}", *header.patient_info),
        creation_time=header.effective_time,
        service_start_time=header.service_start,
        language=header.language,
        title=header.title,
        legal_authenticator=header.legal_authenticator,
        authors=(header.author,) if header.author else (),
        type_code=header.code,
        class_code=Code(cls[0], _CLASS_SCHEME, cls[1]),
        format_code=fmt,
        confidentiality=Code(conf, "2.16.840.1.113883.5.25", _CONFIDENTIALITY.get(conf, conf)),
        facility_type=facility,
        practice_setting=Code(practice[0], _PRACTICE_SCHEME, practice[1]),
    )
