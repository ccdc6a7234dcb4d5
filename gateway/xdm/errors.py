"""The exceptions of the XDM package, each naming the member and field at fault.

It owns the error hierarchy every XDM module raises: :class:`XdmError` is a
permanent :class:`~gateway.base.errors.ContentRefused` (a bad package will not get better
on retry), split into unsafe input (bombs, hostile names, hostile XML),
malformed input, integrity failures and INS problems. Messages name the zip
member and the field, never an INS value, a patient name or document content,
so they may reach the sender and the logs; logs should still prefer
``reason``, ``member`` and ``field`` to the text. It must never import
anything heavier than :mod:`gateway.base.errors`.
"""

from __future__ import annotations

from gateway.base.errors import ContentRefused

__all__ = [
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
]

# The same codes as policies.reasons.XDM_INVALID/XDM_UNSAFE (a library imports no policy;
# tests/xdm/test_public_api.py pins that they agree).
REASON_INVALID = "xdm-invalid"
REASON_UNSAFE = "xdm-unsafe"


def shown(value: str, limit: int = 60) -> str:
    """A value fit for an error message: printable, bounded, quoted.

    Member names and ids come from the sender; control characters or a
    megabyte-long name must not reach a log line or an SMTP reply as is.
    """
    clean = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in value[:limit])
    return repr(clean + ("…" if len(value) > limit else ""))


class XdmError(ContentRefused):
    """An XDM package (or INS, or CDA) was refused; ``member``/``field`` say where.

    A permanent refusal: RFC 3463 ``5.6.0`` (media error), since the content,
    not the envelope, is at fault.
    """

    default_reason = REASON_INVALID

    def __init__(
        self,
        text: str,
        *,
        member: str | None = None,
        field: str | None = None,
        reason: str | None = None,
    ) -> None:
        where = f"{member}: " if member else ""
        super().__init__(f"{where}{text}", reason=reason or self.default_reason)
        self.member = member
        self.field = field


class XdmMalformed(XdmError):
    """The package, its METADATA.XML or a document is not what IHE XDM describes."""


class NotCda(XdmMalformed):
    """A document is XML but not an HL7 CDA R2 ``ClinicalDocument``."""


class XdmIntegrityError(XdmError):
    """A document's bytes do not match the hash or size METADATA.XML declares."""


class XdmInconsistent(XdmError):
    """Two places that must name the same patient (or document) do not."""


class InvalidIns(XdmError, ValueError):
    """An INS (national health identifier) is malformed or its key is wrong."""


class XdmUnsafe(XdmError):
    """The package looks hostile: refused before any further processing."""

    default_reason = REASON_UNSAFE


class XdmLimitExceeded(XdmUnsafe):
    """A size, count or compression-ratio limit was passed (zip bomb defence)."""


class XdmUnsafeName(XdmUnsafe):
    """A member name could escape a directory or collide with another member."""


class XdmUnsafeXml(XdmUnsafe):
    """XML with a DTD, entity declarations or external references (XXE, entity bombs)."""
