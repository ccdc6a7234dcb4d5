"""XDS metadata of an XDM package: the ebRIM 3.0 ``SubmitObjectsRequest`` in METADATA.XML.

It owns the typed model (:class:`Submission`: one submission set, its
document entries) and its two directions: :func:`build_metadata` writes the
XML in the shape of the sample package (submission set, document entries,
the set's classification and HasMember associations), :func:`parse_metadata`
reads it back with defusedxml (no DTD, no entities, bounded size and element
count) and checks that each field the gateway relies on is present and well
formed. It is pure (bytes in, values out) and must never check documents
against the metadata — that is :mod:`gateway.xdm.package`'s job — nor log a
value (patient ids and names are health data).
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET  # the Element type only: parsing goes through defusedxml
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from gateway.xdm.errors import XdmMalformed, shown
from gateway.xdm.safexml import parse_xml

__all__ = [
    "DOCUMENT_ENTRY",
    "METADATA_NAME",
    "Author",
    "Code",
    "DocumentEntry",
    "Submission",
    "SubmissionSet",
    "build_metadata",
    "parse_metadata",
]

METADATA_NAME = "METADATA.XML"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
_R = f"{{{RIM}}}"

# IHE ITI TF-3 §4.2.5 (ebRIM identifiers of XDS objects and attributes).
DOCUMENT_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"  # stable DocumentEntry
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_FORMAT = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_FACILITY = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"

_MAX_ELEMENTS = 200_000  # ~60 per document entry: thousands of documents still fit
_SHA1 = re.compile(r"[0-9A-Fa-f]{40}")
# XML 1.0 §2.2: characters a document may contain (the builder refuses the others).
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Code:
    """A coded value: ``nodeRepresentation``, its ``codingScheme`` and display name."""

    code: str
    scheme: str = ""
    display: str = ""


@dataclass(frozen=True)
class Author:
    """An XDS author: HL7 v2 XCN person, XON institutions, specialties and telecoms."""

    person: str = ""
    institutions: tuple[str, ...] = ()
    specialties: tuple[str, ...] = ()
    telecoms: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentEntry:
    """One XDSDocumentEntry. ``hash`` is SHA-1 hex, ``size`` bytes, ``uri`` relative to
    the METADATA.XML directory (IHE ITI TF-3 §4.2.3.2.10, .24, .30)."""

    entry_id: str
    unique_id: str
    uri: str
    hash: str
    size: int
    mime_type: str
    patient_id: str
    source_patient_id: str = ""
    source_patient_info: tuple[str, ...] = ()
    creation_time: str = ""
    service_start_time: str = ""
    language: str = ""
    title: str = ""
    legal_authenticator: str = ""
    authors: tuple[Author, ...] = ()
    type_code: Code | None = None
    class_code: Code | None = None
    format_code: Code | None = None
    confidentiality: Code | None = None
    facility_type: Code | None = None
    practice_setting: Code | None = None


@dataclass(frozen=True)
class SubmissionSet:
    """The XDSSubmissionSet: who sent what to whom, when (IHE ITI TF-3 §4.2.3.3)."""

    entry_id: str
    unique_id: str
    source_id: str
    patient_id: str
    submission_time: str
    title: str = ""
    content_type: Code | None = None
    authors: tuple[Author, ...] = ()
    intended_recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Submission:
    """A whole METADATA.XML: the submission set and its document entries, in order."""

    submission_set: SubmissionSet
    documents: tuple[DocumentEntry, ...]


# --- building ----------------------------------------------------------------------------


def _text(value: str, what: str) -> str:
    if _XML_BAD.search(value):
        raise XdmMalformed(f"{what} holds a character XML cannot carry", field=what)
    return value


def _slot(name: str, values: Iterable[str], pad: str) -> str:
    items = "".join(f"<rim:Value>{escape(_text(v, name))}</rim:Value>" for v in values)
    return f'{pad}<rim:Slot name="{name}"><rim:ValueList>{items}</rim:ValueList></rim:Slot>\n'


def _name(value: str, pad: str) -> str:
    return (
        f'{pad}<rim:Name><rim:LocalizedString xml:lang="fr-FR" charset="UTF-8" '
        f"value={quoteattr(_text(value, 'Name'))}/></rim:Name>\n"
    )


def _child_id(owner: str, n: int) -> str:
    # Deterministic ids: the same submission always gives the same bytes.
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{owner}#{n}')}"


def _classification(ident: str, scheme: str, owner: str, code: Code) -> str:
    return (
        f'      <rim:Classification id="{ident}" classificationScheme="{scheme}" '
        f"classifiedObject={quoteattr(owner)} "
        f"nodeRepresentation={quoteattr(_text(code.code, 'code'))}>\n"
        + _slot("codingScheme", [code.scheme], "        ")
        + _name(code.display, "        ")
        + "      </rim:Classification>\n"
    )


def _author(ident: str, scheme: str, owner: str, author: Author) -> str:
    pad = "        "
    return (
        f'      <rim:Classification id="{ident}" classificationScheme="{scheme}" '
        f'classifiedObject={quoteattr(owner)} nodeRepresentation="">\n'
        + (_slot("authorPerson", [author.person], pad) if author.person else "")
        + (_slot("authorInstitution", author.institutions, pad) if author.institutions else "")
        + (_slot("authorSpecialty", author.specialties, pad) if author.specialties else "")
        + (_slot("authorTelecommunication", author.telecoms, pad) if author.telecoms else "")
        + "      </rim:Classification>\n"
    )


def _external(ident: str, scheme: str, owner: str, value: str, label: str) -> str:
    return (
        f'      <rim:ExternalIdentifier id="{ident}" identificationScheme="{scheme}" '
        f"registryObject={quoteattr(owner)} value={quoteattr(_text(value, label))}>\n"
        + _name(label, "        ")
        + "      </rim:ExternalIdentifier>\n"
    )


def _entry_xml(doc: DocumentEntry) -> str:
    ids = (_child_id(doc.entry_id, n) for n in range(1, 100))
    pad = "      "
    slots = [
        ("creationTime", doc.creation_time),
        ("hash", doc.hash),
        ("size", str(doc.size)),
        ("languageCode", doc.language),
        ("legalAuthenticator", doc.legal_authenticator),
        ("serviceStartTime", doc.service_start_time),
        ("sourcePatientId", doc.source_patient_id),
    ]
    out = [
        f"    <rim:ExtrinsicObject id={quoteattr(doc.entry_id)} "
        f"mimeType={quoteattr(_text(doc.mime_type, 'mimeType'))} "
        f'objectType="{DOCUMENT_ENTRY}" status="{APPROVED}">\n'
    ]
    out += [_slot(name, [value], pad) for name, value in slots if value]
    if doc.source_patient_info:
        out.append(_slot("sourcePatientInfo", doc.source_patient_info, pad))
    out.append(_slot("URI", [doc.uri], pad))
    if doc.title:
        out.append(_name(doc.title, pad))
    out += [_author(next(ids), DE_AUTHOR, doc.entry_id, a) for a in doc.authors]
    codes = [
        (DE_CLASS, doc.class_code),
        (DE_CONFIDENTIALITY, doc.confidentiality),
        (DE_FORMAT, doc.format_code),
        (DE_FACILITY, doc.facility_type),
        (DE_PRACTICE, doc.practice_setting),
        (DE_TYPE, doc.type_code),
    ]
    out += [
        _classification(next(ids), scheme, doc.entry_id, code)
        for scheme, code in codes
        if code is not None
    ]
    out.append(
        _external(
            next(ids), DE_PATIENT_ID, doc.entry_id, doc.patient_id, "XDSDocumentEntry.patientId"
        )
    )
    out.append(
        _external(next(ids), DE_UNIQUE_ID, doc.entry_id, doc.unique_id, "XDSDocumentEntry.uniqueId")
    )
    out.append("    </rim:ExtrinsicObject>\n")
    return "".join(out)


def _set_xml(sset: SubmissionSet) -> str:
    ids = (_child_id(sset.entry_id, n) for n in range(1, 100))
    pad = "      "
    out = [
        f'    <rim:RegistryPackage id={quoteattr(sset.entry_id)} status="{APPROVED}">\n',
        _slot("submissionTime", [sset.submission_time], pad),
    ]
    if sset.intended_recipients:
        out.append(_slot("intendedRecipient", sset.intended_recipients, pad))
    if sset.title:
        out.append(_name(sset.title, pad))
    out += [_author(next(ids), SS_AUTHOR, sset.entry_id, a) for a in sset.authors]
    if sset.content_type is not None:
        out.append(_classification(next(ids), SS_CONTENT_TYPE, sset.entry_id, sset.content_type))
    out.append(
        _external(
            next(ids), SS_UNIQUE_ID, sset.entry_id, sset.unique_id, "XDSSubmissionSet.uniqueId"
        )
    )
    out.append(
        _external(
            next(ids), SS_SOURCE_ID, sset.entry_id, sset.source_id, "XDSSubmissionSet.sourceId"
        )
    )
    if sset.patient_id:
        out.append(
            _external(
                next(ids),
                SS_PATIENT_ID,
                sset.entry_id,
                sset.patient_id,
                "XDSSubmissionSet.patientId",
            )
        )
    out.append("    </rim:RegistryPackage>\n")
    return "".join(out)


def build_metadata(submission: Submission) -> bytes:
    """METADATA.XML for ``submission`` (UTF-8), laid out like the sample package."""
    sset = submission.submission_set
    links = [
        f'    <rim:Classification id="{_child_id(sset.entry_id, 1000)}" '
        f"classifiedObject={quoteattr(sset.entry_id)} "
        f'classificationNode="{SUBMISSION_SET_NODE}"/>\n'
    ]
    for n, doc in enumerate(submission.documents, start=1001):
        links.append(
            f'    <rim:Association id="{_child_id(sset.entry_id, n)}" '
            f'associationType="{HAS_MEMBER}" sourceObject={quoteattr(sset.entry_id)} '
            f"targetObject={quoteattr(doc.entry_id)}>\n"
            + _slot("SubmissionSetStatus", ["Original"], "      ")
            + "    </rim:Association>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<lcm:SubmitObjectsRequest xmlns:lcm="{LCM}" xmlns:rim="{RIM}">\n'
        "  <rim:RegistryObjectList>\n"
        + _set_xml(sset)
        + "".join(_entry_xml(d) for d in submission.documents)
        + "".join(links)
        + "  </rim:RegistryObjectList>\n"
        "</lcm:SubmitObjectsRequest>\n"
    ).encode("utf-8")


# --- parsing -----------------------------------------------------------------------------


class _Reader:
    """Field access on one ebRIM object, with errors naming the object and field."""

    def __init__(self, elem: ET.Element, what: str, member: str) -> None:
        self.elem = elem
        self.what = what
        self.member = member

    def fail(self, text: str, field: str) -> XdmMalformed:
        return XdmMalformed(f"{self.what}: {text}", member=self.member, field=field)

    def values(self, name: str) -> tuple[str, ...]:
        for slot in self.elem.findall(f"{_R}Slot"):
            if slot.get("name") == name:
                return tuple(
                    (v.text or "").strip() for v in slot.findall(f"{_R}ValueList/{_R}Value")
                )
        return ()

    def one(self, name: str, *, required: bool = False) -> str:
        found = self.values(name)
        if len(found) > 1:
            raise self.fail(f"slot {name!r} has {len(found)} values, expected one", name)
        if required and not (found and found[0]):
            raise self.fail(f"missing slot {name!r}", name)
        return found[0] if found else ""

    def title(self) -> str:
        node = self.elem.find(f"{_R}Name/{_R}LocalizedString")
        return node.get("value", "") if node is not None else ""

    def code(self, scheme: str) -> Code | None:
        found = [
            c
            for c in self.elem.findall(f"{_R}Classification")
            if c.get("classificationScheme") == scheme
        ]
        if not found:
            return None
        if len(found) > 1:
            raise self.fail(f"classification {scheme} appears {len(found)} times", scheme)
        node = _Reader(found[0], self.what, self.member)
        return Code(found[0].get("nodeRepresentation", ""), node.one("codingScheme"), node.title())

    def authors(self, scheme: str) -> tuple[Author, ...]:
        out = []
        for c in self.elem.findall(f"{_R}Classification"):
            if c.get("classificationScheme") == scheme:
                a = _Reader(c, self.what, self.member)
                out.append(
                    Author(
                        a.one("authorPerson"),
                        a.values("authorInstitution"),
                        a.values("authorSpecialty"),
                        a.values("authorTelecommunication"),
                    )
                )
        return tuple(out)

    def external(self, scheme: str, label: str, *, required: bool) -> str:
        found = [
            e.get("value", "")
            for e in self.elem.findall(f"{_R}ExternalIdentifier")
            if e.get("identificationScheme") == scheme
        ]
        if len(found) > 1:
            raise self.fail(f"{label} appears {len(found)} times", label)
        if required and not (found and found[0].strip()):
            raise self.fail(f"missing {label}", label)
        return found[0].strip() if found else ""

    def uri(self) -> str:
        values = self.values("URI")
        if len(values) == 1:
            return values[0]
        # IHE ITI TF-3 §4.2.3.2.30: a long URI is split over values "1|…", "2|…".
        parts: dict[int, str] = {}
        for value in values:
            index, sep, rest = value.partition("|")
            if not sep or not index.isdigit() or int(index) in parts:
                raise self.fail("slot 'URI' has several values but no 'n|' prefixes", "URI")
            parts[int(index)] = rest
        if not parts or sorted(parts) != list(range(1, len(parts) + 1)):
            raise self.fail("missing slot 'URI'", "URI")
        return "".join(parts[i] for i in sorted(parts))


def _document_entry(elem: ET.Element, n: int, member: str) -> DocumentEntry:
    ident = elem.get("id", "")
    r = _Reader(elem, f"document entry {n} ({shown(ident)})", member)
    if elem.get("objectType") != DOCUMENT_ENTRY:
        raise r.fail(
            f"objectType {shown(elem.get('objectType', ''))} is not a stable XDSDocumentEntry",
            "objectType",
        )
    digest = r.one("hash", required=True)
    if not _SHA1.fullmatch(digest):  # IHE ITI TF-3 §4.2.3.2.10: SHA-1, hex
        raise r.fail("slot 'hash' is not 40 hexadecimal digits (SHA-1)", "hash")
    size_text = r.one("size", required=True)
    if not (size_text.isascii() and size_text.isdigit() and len(size_text) <= 18):
        raise r.fail("slot 'size' is not a non-negative integer", "size")
    mime = elem.get("mimeType", "").strip()
    if not mime:  # IHE ITI TF-3 §4.2.3.2.16
        raise r.fail("missing mimeType", "mimeType")
    return DocumentEntry(
        entry_id=ident,
        unique_id=r.external(DE_UNIQUE_ID, "XDSDocumentEntry.uniqueId", required=True),
        uri=r.uri(),
        hash=digest.lower(),
        size=int(size_text),
        mime_type=mime,
        patient_id=r.external(DE_PATIENT_ID, "XDSDocumentEntry.patientId", required=True),
        source_patient_id=r.one("sourcePatientId"),
        source_patient_info=r.values("sourcePatientInfo"),
        creation_time=r.one("creationTime"),
        service_start_time=r.one("serviceStartTime"),
        language=r.one("languageCode"),
        title=r.title(),
        legal_authenticator=r.one("legalAuthenticator"),
        authors=r.authors(DE_AUTHOR),
        type_code=r.code(DE_TYPE),
        class_code=r.code(DE_CLASS),
        format_code=r.code(DE_FORMAT),
        confidentiality=r.code(DE_CONFIDENTIALITY),
        facility_type=r.code(DE_FACILITY),
        practice_setting=r.code(DE_PRACTICE),
    )


def _submission_set(objects: ET.Element, member: str) -> SubmissionSet:
    packages = objects.findall(f"{_R}RegistryPackage")
    marked = {
        c.get("classifiedObject")
        for c in objects.iter(f"{_R}Classification")
        if c.get("classificationNode") == SUBMISSION_SET_NODE
    }
    sets = [p for p in packages if p.get("id") in marked] or (
        packages if len(packages) == 1 else []
    )
    if len(sets) != 1:
        raise XdmMalformed(
            f"expected one XDSSubmissionSet, found {len(sets)}",
            member=member,
            field="RegistryPackage",
        )
    elem = sets[0]
    r = _Reader(elem, "submission set", member)
    return SubmissionSet(
        entry_id=elem.get("id", ""),
        unique_id=r.external(SS_UNIQUE_ID, "XDSSubmissionSet.uniqueId", required=True),
        source_id=r.external(SS_SOURCE_ID, "XDSSubmissionSet.sourceId", required=False),
        # IHE ITI TF-2b §3.32.4.1: XDM lets the set's patientId be absent.
        patient_id=r.external(SS_PATIENT_ID, "XDSSubmissionSet.patientId", required=False),
        submission_time=r.one("submissionTime"),
        title=r.title(),
        content_type=r.code(SS_CONTENT_TYPE),
        authors=r.authors(SS_AUTHOR),
        intended_recipients=r.values("intendedRecipient"),
    )


def parse_metadata(
    data: bytes, *, member: str = METADATA_NAME, max_bytes: int = 8 * 1024 * 1024
) -> Submission:
    """The :class:`Submission` in METADATA.XML bytes; refuses DTDs and entities outright."""
    root = parse_xml(data, member=member, max_bytes=max_bytes, max_elements=_MAX_ELEMENTS)
    if root.tag != f"{{{LCM}}}SubmitObjectsRequest":
        raise XdmMalformed(
            f"root element {shown(root.tag)} is not an ebRIM 3.0 lcm:SubmitObjectsRequest",
            member=member,
            field="SubmitObjectsRequest",
        )
    objects = root.find(f"{_R}RegistryObjectList")
    if objects is None:
        raise XdmMalformed("no rim:RegistryObjectList", member=member, field="RegistryObjectList")
    sset = _submission_set(objects, member)
    entries = tuple(
        _document_entry(e, n, member)
        for n, e in enumerate(objects.findall(f"{_R}ExtrinsicObject"), start=1)
    )
    if not entries:
        raise XdmMalformed(
            "no XDSDocumentEntry (rim:ExtrinsicObject)", member=member, field="ExtrinsicObject"
        )
    seen: set[str] = set()
    for entry in entries:
        if entry.entry_id in seen:
            raise XdmMalformed(
                f"document entry id {shown(entry.entry_id)} appears twice",
                member=member,
                field="id",
            )
        seen.add(entry.entry_id)
    return Submission(sset, entries)
