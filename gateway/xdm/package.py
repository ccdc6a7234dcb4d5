"""IHE XDM packages (the ``IHE_XDM.zip`` of MSSanté mail): build one, read and check one.

It owns the package layout (``INDEX.HTM``, ``README.TXT``,
``IHE_XDM/SUBSETnn/METADATA.XML`` and the documents beside it), the checks
that tie METADATA.XML to the documents (SHA-1 hash and size per document,
one patient INS with a valid key across the metadata and the CDA headers)
and the ``X-MSS-*`` header values that follow from a package. The zip itself
is read by :mod:`gateway.xdm.zipsafe` (bomb and traversal defences) and all
XML by defusedxml. Pure: bytes in, a frozen :class:`XdmPackage` or an
:class:`~gateway.xdm.errors.XdmError` naming the member out. It must never
write to disk, log, or put patient data in an error message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from gateway.xdm.cda import CdaHeader, document_entry, read_cda_header
from gateway.xdm.errors import (
    InvalidIns,
    NotCda,
    XdmError,
    XdmInconsistent,
    XdmIntegrityError,
    XdmLimitExceeded,
    XdmMalformed,
    shown,
)
from gateway.xdm.ins import INS_OIDS, Ins, ins_from_xds, parse_xds_patient_id
from gateway.xdm.metadata import (
    METADATA_NAME,
    Code,
    DocumentEntry,
    Submission,
    SubmissionSet,
    build_metadata,
    parse_metadata,
)
from gateway.xdm.zipsafe import XdmLimits, check_name, read_members

__all__ = ["XdmDocument", "XdmPackage", "build_xdm", "inspect_xdm", "mss_headers", "read_xdm"]

SUBSET = "IHE_XDM/SUBSET01"
# IHE ITI TF-2b §3.32.4.1: IHE_XDM/<subset>/METADATA.XML, one directory per submission set.
_METADATA_PATH = re.compile(r"IHE_XDM/([^/]+)/METADATA\.XML", re.IGNORECASE)
_XML_TYPES = re.compile(r"(text|application)/([\w.+-]+\+)?xml", re.IGNORECASE)


@dataclass(frozen=True)
class XdmDocument:
    """One document of a package and what was checked about it.

    ``patient_ins`` comes from the metadata patientId; ``cda_code`` from the
    CDA's own ``code`` when the document is a CDA. ``hash_ok``/``size_ok``
    compare the bytes with METADATA.XML (IHE ITI TF-3 §4.2.3.2.10, .24).
    """

    name: str
    data: bytes = field(repr=False)
    declared_hash: str
    declared_size: int
    actual_hash: str
    mime_type: str
    patient_ins: Ins | None
    type_code: Code | None
    cda_code: Code | None
    entry: DocumentEntry = field(repr=False)

    @property
    def hash_ok(self) -> bool:
        return self.actual_hash == self.declared_hash

    @property
    def size_ok(self) -> bool:
        return len(self.data) == self.declared_size


@dataclass(frozen=True)
class XdmPackage:
    """A package read under limits. ``problems`` lists integrity and INS failures found.

    :func:`read_xdm` never returns a package with problems; :func:`inspect_xdm`
    does, so that a report can show every document's state.
    """

    documents: tuple[XdmDocument, ...]
    submissions: tuple[Submission, ...] = field(repr=False)
    patient_ins: Ins | None
    members: tuple[str, ...]
    problems: tuple[XdmError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def _ins_of(patient_id: str, member: str, what: str) -> Ins | None:
    try:
        return ins_from_xds(patient_id)
    except InvalidIns as exc:
        raise InvalidIns(f"{what}: {exc.text}", member=member, field=what) from None


def _document(
    meta_path: str,
    entry: DocumentEntry,
    members: dict[str, bytes],
    folded: dict[str, str],
    limits: XdmLimits,
    problems: list[XdmError],
) -> XdmDocument:
    base = meta_path.rsplit("/", 1)[0]
    try:
        check_name(entry.uri, limits.max_name_length)
    except XdmError as exc:
        raise type(exc)(
            f"document entry {shown(entry.entry_id)}: URI {exc.text}", member=meta_path, field="URI"
        ) from None
    path = f"{base}/{entry.uri}"
    name = path if path in members else folded.get(path.casefold(), "")
    if not name:
        raise XdmMalformed(
            f"document entry {shown(entry.entry_id)}: URI {shown(entry.uri)} is not in the package",
            member=meta_path,
            field="URI",
        )
    data = members[name]
    actual = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    # IHE ITI TF-3 §4.2.3.2.10 / .24: hash (SHA-1 hex) and size of the document bytes.
    if actual != entry.hash:
        problems.append(
            XdmIntegrityError(
                f"SHA-1 {actual} does not match the declared hash {entry.hash}",
                member=name,
                field="hash",
            )
        )
    if len(data) != entry.size:
        problems.append(
            XdmIntegrityError(
                f"size {len(data)} does not match the declared size {entry.size}",
                member=name,
                field="size",
            )
        )
    try:
        ins = _ins_of(
            entry.patient_id, meta_path, f"XDSDocumentEntry.patientId of {shown(entry.uri)}"
        )
    except InvalidIns as exc:
        problems.append(exc)
        ins = None
    cda: CdaHeader | None = None
    if _XML_TYPES.fullmatch(entry.mime_type):
        try:
            cda = read_cda_header(data, member=name, max_bytes=limits.max_entry_bytes)
        except NotCda:
            cda = None
        except InvalidIns as exc:
            problems.append(exc)
    if cda is not None and cda.ins is not None and ins is not None and cda.ins != ins:
        # MSSanté: the metadata must describe the patient the document is about.
        problems.append(
            XdmInconsistent(
                "the CDA recordTarget INS differs from XDSDocumentEntry.patientId",
                member=name,
                field="recordTarget/patientRole/id",
            )
        )
    return XdmDocument(
        name=name,
        data=data,
        declared_hash=entry.hash,
        declared_size=entry.size,
        actual_hash=actual,
        mime_type=entry.mime_type,
        patient_ins=ins,
        type_code=entry.type_code,
        cda_code=cda.code if cda else None,
        entry=entry,
    )


def _has_ins_oid(patient_id: str) -> bool:
    """True when the id names an INS authority (a bad one was already reported)."""
    try:
        return parse_xds_patient_id(patient_id)[1] in INS_OIDS
    except InvalidIns:
        return True  # malformed: reported by _document already


def _patient(
    docs: Sequence[XdmDocument],
    subs: Sequence[tuple[str, Submission]],
    require_ins: bool,
    problems: list[XdmError],
) -> Ins | None:
    found: Ins | None = None
    for doc in docs:
        if doc.patient_ins is None:
            if require_ins and not _has_ins_oid(doc.entry.patient_id):
                # MSSanté: documents about a patient carry the INS as XDS patientId.
                problems.append(
                    InvalidIns(
                        "XDSDocumentEntry.patientId is not an INS (no INS OID)",
                        member=doc.name,
                        field="patientId",
                    )
                )
            continue
        if found is None:
            found = doc.patient_ins
        elif doc.patient_ins != found:
            problems.append(
                XdmInconsistent(
                    "patient INS differs from the package's first document",
                    member=doc.name,
                    field="patientId",
                )
            )
    for path, sub in subs:
        if not sub.submission_set.patient_id:
            continue
        try:
            set_ins = _ins_of(sub.submission_set.patient_id, path, "XDSSubmissionSet.patientId")
        except InvalidIns as exc:
            problems.append(exc)
            continue
        if found is not None and set_ins != found:
            problems.append(
                XdmInconsistent(
                    "XDSSubmissionSet.patientId differs from the documents' INS",
                    member=path,
                    field="patientId",
                )
            )
    return found


def inspect_xdm(
    data: bytes, limits: XdmLimits | None = None, *, require_ins: bool = True
) -> XdmPackage:
    """Read and check a package; hash, size and INS failures are collected, not raised.

    Unsafe or malformed input (bombs, hostile names or XML, missing or
    unreadable METADATA.XML, a URI naming no member) still raises.
    """
    limits = limits or XdmLimits()
    members = read_members(data, limits)
    folded = {n.casefold(): n for n in members}
    meta_paths = sorted(n for n in members if _METADATA_PATH.fullmatch(n))
    if not meta_paths:
        raise XdmMalformed(
            f"no IHE_XDM/SUBSETnn/{METADATA_NAME} in the package", field=METADATA_NAME
        )
    problems: list[XdmError] = []
    docs: list[XdmDocument] = []
    subs: list[tuple[str, Submission]] = []
    used: set[str] = set()
    for path in meta_paths:
        sub = parse_metadata(members[path], member=path, max_bytes=limits.max_metadata_bytes)
        subs.append((path, sub))
        for entry in sub.documents:
            doc = _document(path, entry, members, folded, limits, problems)
            if doc.name in used or doc.name in meta_paths:
                raise XdmMalformed(
                    f"two document entries (or the metadata) share member {shown(doc.name)}",
                    member=path,
                    field="URI",
                )
            used.add(doc.name)
            docs.append(doc)
    ins = _patient(docs, subs, require_ins, problems)
    return XdmPackage(
        documents=tuple(docs),
        submissions=tuple(s for _, s in subs),
        patient_ins=ins,
        members=tuple(members),
        problems=tuple(problems),
    )


def read_xdm(
    data: bytes, limits: XdmLimits | None = None, *, require_ins: bool = True
) -> XdmPackage:
    """A checked package, or the first :class:`XdmError` found.

    ``require_ins=False`` accepts documents whose patientId is not an INS
    (then ``patient_ins`` is None and ``X-MSS-INS`` is ``N``); an INS with a
    bad key is refused either way.
    """
    package = inspect_xdm(data, limits, require_ins=require_ins)
    if package.problems:
        raise package.problems[0]
    return package


def mss_headers(package: XdmPackage) -> dict[str, str]:
    """The ``X-MSS-*`` headers a message carrying ``package`` should have.

    Interpretation (the operator rules give the names and values, not this
    detail): ``X-MSS-INS`` is ``O`` when every document's XDS patientId is an
    INS (any of the four INS OIDs, test and demo included, as the DLU sample
    shows) with a valid key, naming one patient; ``N`` otherwise. pli cannot
    see whether the identity was *qualified* through INSi; the sender asserts
    it by using an INS OID. ``X-MSS-CODECDA`` is the document type code — the
    CDA ``code`` when the document is a CDA, else the XDS typeCode — of each
    document, distinct values in package order joined by ``,`` (one value for
    the usual one-document package); absent when no document has one.
    """
    qualified = (
        package.ok
        and package.patient_ins is not None
        and all(d.patient_ins == package.patient_ins for d in package.documents)
    )
    headers = {"X-MSS-INS": "O" if qualified else "N"}
    codes: list[str] = []
    for doc in package.documents:
        code = doc.cda_code or doc.type_code
        if code is not None and code.code and code.code not in codes:
            codes.append(code.code)
    if codes:
        headers["X-MSS-CODECDA"] = ",".join(codes)
    return headers


# --- building ----------------------------------------------------------------------------


def _index(titles: Sequence[tuple[str, str]]) -> bytes:
    links = "".join(
        f'<li><a href="{SUBSET}/{name}">{escape(title)}</a></li>\r\n' for name, title in titles
    )
    return (
        '<!DOCTYPE html>\r\n<html lang="fr"><head><meta charset="utf-8">'
        "<title>IHE XDM</title></head><body>\r\n<h1>Contenu du message</h1>\r\n<ul>\r\n"
        + links
        + f'<li><a href="{SUBSET}/{METADATA_NAME}">Métadonnées XDS</a></li>\r\n'
        '<li><a href="README.TXT">README.TXT</a></li>\r\n</ul>\r\n</body></html>\r\n'
    ).encode("utf-8")


def _readme(entries: Sequence[DocumentEntry], sender: str) -> bytes:
    lines = [
        "IHE XDM package",
        "",
        f"Sender : {sender or 'unknown'}",
        "Made by: pli (gateway.xdm)",
        "",
        "Contents:",
        f"  {SUBSET}/{METADATA_NAME}  XDS metadata (ebRIM 3.0)",
    ]
    lines += [f"  {SUBSET}/{e.uri}    {e.title or 'document'} (HL7 CDA R2)" for e in entries]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _oid(seed: str) -> str:
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'https://pli.invalid/xdm/' + seed).int}"


def build_xdm(
    documents: Sequence[tuple[str, bytes]],
    *,
    ins: Ins | None = None,
    submission_time: dt.datetime | None = None,
    source_id: str | None = None,
    limits: XdmLimits | None = None,
) -> bytes:
    """An XDM zip holding CDA ``documents`` (``(filename, bytes)``), metadata from their headers.

    The patient INS is read from each CDA; ``ins`` supplies it for documents
    that carry none, and a CDA naming a *different* INS is refused (the
    package would contradict itself). ``submission_time`` defaults to the
    latest document time, so equal input gives equal bytes; ids are derived
    from the documents' hashes for the same reason.
    """
    limits = limits or XdmLimits()
    if not documents:
        raise XdmMalformed("no document to package", field="documents")
    if len(documents) > min(9999, limits.max_entries - 3):
        raise XdmLimitExceeded(
            f"{len(documents)} documents exceed the entry limit", field="documents"
        )
    headers: list[CdaHeader] = []
    patient = ins
    for filename, data in documents:
        if len(data) > limits.max_entry_bytes:
            raise XdmLimitExceeded(
                f"{len(data)} bytes exceed the {limits.max_entry_bytes}-byte entry limit",
                member=shown(filename),
                field="size",
            )
        header = read_cda_header(data, member=shown(filename), max_bytes=limits.max_entry_bytes)
        if header.ins is not None and patient is not None and header.ins != patient:
            raise XdmInconsistent(
                "the CDA's INS differs from the patient's"
                + (" given" if ins is not None else " in the first document"),
                member=shown(filename),
                field="recordTarget/patientRole/id",
            )
        patient = patient or header.ins
        headers.append(header)
    if patient is None:
        raise InvalidIns(
            "no INS in recordTarget/patientRole/id (an id with an INS OID); supply one", field="ins"
        )
    digests = [hashlib.sha1(d, usedforsecurity=False).hexdigest() for _, d in documents]
    seed = "/".join(digests)
    entries = tuple(
        document_entry(
            h,
            entry_id=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed + str(n))}",
            uri=f"DOC{n:04d}.XML",
            digest=digests[n - 1],
            size=len(data),
            ins=patient,
        )
        for n, (h, (_, data)) in enumerate(zip(headers, documents, strict=True), start=1)
    )
    when = submission_time or max(
        (
            dt.datetime.strptime(e.creation_time.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
            for e in entries
            if len(e.creation_time) >= 8
        ),
        default=dt.datetime(1980, 1, 1),
    )
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    first = headers[0]
    institution = first.author.institutions[0] if first.author and first.author.institutions else ""
    sset = SubmissionSet(
        entry_id=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed + '/set')}",
        unique_id=_oid(seed + "/set"),
        source_id=source_id or _oid("source/" + (institution.rsplit("^", 1)[-1] or "pli")),
        patient_id=entries[0].patient_id,
        submission_time=when.strftime("%Y%m%d%H%M%S"),
        title=first.title,
        content_type=first.code,
        authors=(first.author,) if first.author else (),
        intended_recipients=tuple(dict.fromkeys(r for h in headers for r in h.recipients)),
    )
    files = [
        ("INDEX.HTM", _index([(e.uri, e.title or "document") for e in entries])),
        ("README.TXT", _readme(entries, institution.split("^", 1)[0])),
        (f"{SUBSET}/{METADATA_NAME}", build_metadata(Submission(sset, entries))),
    ]
    files += [(f"{SUBSET}/{e.uri}", data) for e, (_, data) in zip(entries, documents, strict=True)]
    out = io.BytesIO()
    t = max(when, dt.datetime(1980, 1, 1))
    stamp = (t.year, t.month, t.day, t.hour, t.minute, t.second)
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, content, compresslevel=9)
    return out.getvalue()
