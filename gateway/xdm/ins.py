"""The INS (Identifiant National de Santé): parse, check the key, write and read its XDS form.

It owns the INS arithmetic (13 characters + a 2-digit key, key = 97 - (number
mod 97), Corsican départements 2A/2B counted as 19/18 as for the NIR), the
four INS OIDs, the HL7 v2 CX form XDS metadata uses
(``<INS>^^^&<OID>&ISO^NH``) and finding the patient's INS in a CDA header.
It is pure: strings or bytes in, an :class:`Ins` or an :class:`InvalidIns`
out. It must never put an INS value in an error message or a ``repr`` (a log
line must not identify a patient), and never trust a CDA's XML (defusedxml
via :mod:`gateway.xdm.safexml`, bounded).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.xdm.errors import InvalidIns, NotCda, shown
from gateway.xdm.safexml import parse_xml

__all__ = [
    "INS_DEMO",
    "INS_NIA",
    "INS_NIR",
    "INS_OIDS",
    "INS_TEST",
    "Ins",
    "compute_key",
    "format_xds",
    "ins_from_cda",
    "ins_from_ids",
    "ins_from_xds",
    "parse_ins",
    "parse_xds_patient_id",
]

# MSSanté / CI-SIS: the assigning authorities of the INS.
INS_NIR = "1.2.250.1.213.1.4.8"
INS_NIA = "1.2.250.1.213.1.4.9"
INS_TEST = "1.2.250.1.213.1.4.10"
INS_DEMO = "1.2.250.1.213.1.4.11"
INS_OIDS: dict[str, str] = {
    INS_NIR: "INS-NIR",
    INS_NIA: "INS-NIA",
    INS_TEST: "INS-NIR test",
    INS_DEMO: "INS-NIR demo",
}

V3 = "{urn:hl7-org:v3}"
_CDA_ROOT = f"{V3}ClinicalDocument"
# NIR rule: the Corsican département codes are replaced by these digits to compute the key.
_CORSICA = {"2A": "19", "2B": "18"}
_CDA_MAX_ELEMENTS = 20_000  # a CDA header has a few hundred; the body is never read


@dataclass(frozen=True)
class Ins:
    """A checked INS: ``number`` (13 characters) and ``key`` agree; ``oid`` is an INS OID."""

    number: str
    key: int
    oid: str = INS_NIR

    def __post_init__(self) -> None:
        _check_number(self.number)
        if self.oid not in INS_OIDS:
            raise InvalidIns(f"OID {shown(self.oid)} is not an INS OID", field="oid")
        expected = compute_key(self.number)
        if self.key != expected:
            raise InvalidIns(f"key {self.key:02d} does not match {expected:02d}", field="key")

    @property
    def value(self) -> str:
        """The 15 characters as written in a CDA ``id/@extension``."""
        return f"{self.number}{self.key:02d}"

    @property
    def kind(self) -> str:
        """``INS-NIR``, ``INS-NIA``, ``INS-NIR test`` or ``INS-NIR demo``."""
        return INS_OIDS[self.oid]

    def __repr__(self) -> str:  # never the number: reprs end up in logs and tracebacks
        return f"Ins(kind={self.kind!r}, number=<masked>)"


def _check_number(number: str) -> None:
    if len(number) != 13:
        raise InvalidIns(f"INS number must have 13 characters, got {len(number)}", field="number")
    for pos, char in enumerate(number, start=1):
        if pos in (6, 7) and number[5:7] in _CORSICA:
            continue
        if char not in "0123456789":
            what = "département" if pos in (6, 7) else "number"
            raise InvalidIns(
                f"INS {what} character {pos} is not a digit (only 2A/2B are allowed at 6-7)",
                field="number",
            )


def compute_key(number: str) -> int:
    """The key of a 13-character INS number: 97 - (number mod 97), 2A→19 and 2B→18.

    # MSSanté / NIR: Corsica's 2A and 2B are counted as 19 and 18.
    """
    _check_number(number)
    digits = number[:5] + _CORSICA.get(number[5:7], number[5:7]) + number[7:]
    return 97 - int(digits) % 97


def parse_ins(text: str, oid: str = INS_NIR) -> Ins:
    """An :class:`Ins` from its 15 characters (spaces between groups are ignored)."""
    value = text.replace(" ", "").upper()
    if len(value) != 15:
        raise InvalidIns(
            f"INS must have 15 characters (13 + a 2-digit key), got {len(value)}", field="ins"
        )
    key = value[13:]
    if not (key.isascii() and key.isdigit()):
        raise InvalidIns("INS key (characters 14-15) is not two digits", field="key")
    return Ins(value[:13], int(key), oid)


def format_xds(ins: Ins) -> str:
    """The XDS patientId (HL7 v2 CX) of an INS: ``<INS>^^^&<OID>&ISO^NH``."""
    # MSSanté / CI-SIS: identifier type NH (national health number), ISO OID authority.
    return f"{ins.value}^^^&{ins.oid}&ISO^NH"


def parse_xds_patient_id(text: str) -> tuple[str, str]:
    """``(id, authority OID)`` of a CX patient id ``ID^^^&OID&ISO[^TYPE]``.

    # IHE ITI TF-3 §4.2.3.2.18: patientId is a CX with only components 1 and 4
    # (and, in France, 5 = NH); the assigning authority is an ISO OID.
    """
    parts = text.strip().split("^")
    if len(parts) < 4 or any(parts[1:3]) or any(parts[5:]) or not parts[0]:
        raise InvalidIns("patient id is not of the form ID^^^&OID&ISO", field="patientId")
    authority = parts[3].split("&")
    if len(authority) != 3 or authority[0] or authority[2] != "ISO" or not authority[1]:
        raise InvalidIns("patient id authority is not &OID&ISO", field="patientId")
    if len(parts) == 5 and parts[4] not in ("", "NH"):
        raise InvalidIns(f"patient id type {shown(parts[4])} is not NH", field="patientId")
    return parts[0], authority[1]


def ins_from_xds(text: str) -> Ins | None:
    """The INS of an XDS patient id; None if its authority is not an INS OID.

    An INS OID with a bad value raises: a wrong key is never silently
    downgraded to "no INS".
    """
    value, oid = parse_xds_patient_id(text)
    if oid not in INS_OIDS:
        return None
    return parse_ins(value, oid)


def ins_from_ids(ids: Iterable[tuple[str, str]]) -> Ins | None:
    """The INS among ``(root, extension)`` pairs of ``patientRole/id``, None if none.

    Two different INS for one patient are refused: which would be right?
    """
    found: Ins | None = None
    for root, extension in ids:
        if root not in INS_OIDS:
            continue
        ins = parse_ins(extension, root)
        if found is not None and found != ins:
            raise InvalidIns(
                "recordTarget/patientRole carries two different INS",
                field="recordTarget/patientRole/id",
            )
        found = ins
    return found


def _stop_at_body(tag: str, depth: int) -> bool:
    return depth == 1 and tag == f"{V3}component"


def ins_from_cda(
    data: bytes, *, member: str = "CDA", max_bytes: int = 32 * 1024 * 1024
) -> Ins | None:
    """The patient's INS in a CDA R2 header (``recordTarget/patientRole/id``), None if absent.

    Only the header is parsed (parsing stops where the body starts).
    """
    root = parse_xml(
        data, member=member, max_bytes=max_bytes, max_elements=_CDA_MAX_ELEMENTS, stop=_stop_at_body
    )
    if root.tag != _CDA_ROOT:
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
        return ins_from_ids(ids)
    except InvalidIns as exc:
        raise InvalidIns(exc.text, member=member, field="recordTarget/patientRole/id") from None
