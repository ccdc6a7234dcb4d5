"""IHE XDM packages and the INS: what MSSanté mail carries structured documents in.

The package owns building and checking ``IHE_XDM.zip`` attachments
(:mod:`.package`), their XDS metadata (:mod:`.metadata`), the CDA header
fields they are built from (:mod:`.cda`), the INS (:mod:`.ins`) and the
defences against hostile zips and XML (:mod:`.zipsafe`, :mod:`.safexml`).
Everything here is pure — bytes in, frozen values or an
:class:`XdmError` out — and must never touch disk, network or logs.
"""

from __future__ import annotations

from gateway.xdm.errors import (
    InvalidIns,
    NotCda,
    XdmError,
    XdmInconsistent,
    XdmIntegrityError,
    XdmLimitExceeded,
    XdmMalformed,
    XdmUnsafe,
    XdmUnsafeName,
    XdmUnsafeXml,
)
from gateway.xdm.ins import (
    INS_DEMO,
    INS_NIA,
    INS_NIR,
    INS_TEST,
    Ins,
    compute_key,
    format_xds,
    ins_from_cda,
    ins_from_xds,
    parse_ins,
)
from gateway.xdm.metadata import Code, DocumentEntry, Submission, build_metadata, parse_metadata
from gateway.xdm.package import (
    XdmDocument,
    XdmPackage,
    build_xdm,
    inspect_xdm,
    mss_headers,
    read_xdm,
)
from gateway.xdm.zipsafe import XdmLimits

__all__ = [
    "INS_DEMO",
    "INS_NIA",
    "INS_NIR",
    "INS_TEST",
    "Code",
    "DocumentEntry",
    "Ins",
    "InvalidIns",
    "NotCda",
    "Submission",
    "XdmDocument",
    "XdmError",
    "XdmInconsistent",
    "XdmIntegrityError",
    "XdmLimitExceeded",
    "XdmLimits",
    "XdmMalformed",
    "XdmPackage",
    "XdmUnsafe",
    "XdmUnsafeName",
    "XdmUnsafeXml",
    "build_metadata",
    "build_xdm",
    "compute_key",
    "format_xds",
    "ins_from_cda",
    "ins_from_xds",
    "inspect_xdm",
    "mss_headers",
    "parse_ins",
    "parse_metadata",
    "read_xdm",
]
