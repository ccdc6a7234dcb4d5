"""Pins the XDM package's public names: changing them is a decision, not an accident."""

from __future__ import annotations

import pytest

from tests.support.public_api import check_public_names

PUBLIC = {
    "gateway.xdm": [
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
    ],
    "gateway.xdm.ins": [
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
    ],
    "gateway.xdm.metadata": [
        "DOCUMENT_ENTRY",
        "METADATA_NAME",
        "Author",
        "Code",
        "DocumentEntry",
        "Submission",
        "SubmissionSet",
        "build_metadata",
        "parse_metadata",
    ],
    "gateway.xdm.package": [
        "XdmDocument",
        "XdmPackage",
        "build_xdm",
        "inspect_xdm",
        "mss_headers",
        "read_xdm",
    ],
    "gateway.xdm.cda": ["CdaHeader", "document_entry", "read_cda_header", "xds_time"],
    "gateway.xdm.zipsafe": ["ZIP_MAGICS", "XdmLimits", "check_name", "read_members"],
    "gateway.xdm.safexml": ["parse_xml"],
    "gateway.xdm.errors": [
        "REASON_INVALID",
        "REASON_UNSAFE",
        "InvalidIns",
        "NotCda",
        "XdmError",
        "XdmInconsistent",
        "XdmIntegrityError",
        "XdmLimitExceeded",
        "XdmMalformed",
        "XdmUnsafe",
        "XdmUnsafeName",
        "XdmUnsafeXml",
        "shown",
    ],
    "gateway.cli.xdm": ["add_parser", "command", "run"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module: str) -> None:
    check_public_names(module, PUBLIC[module])


def test_errors_are_permanent_refusals() -> None:
    from gateway.base.errors import Refused, is_temporary
    from gateway.smtp import replies
    from gateway.xdm import XdmError, XdmUnsafe

    exc = XdmUnsafe("member is encrypted", member="DOC0001.XML", field="flags")
    assert isinstance(exc, XdmError) and isinstance(exc, Refused) and not is_temporary(exc)
    assert replies.for_error(exc) == "550 5.6.0 DOC0001.XML: member is encrypted"
    assert exc.reason == "xdm-unsafe"


def test_reason_codes_agree_with_the_policy_list() -> None:
    """A library imports no policy, so XDM keeps its two codes itself: the same strings."""
    from gateway.xdm import errors
    from policies import reasons

    assert (errors.REASON_INVALID, errors.REASON_UNSAFE) == (
        reasons.XDM_INVALID,
        reasons.XDM_UNSAFE,
    )
