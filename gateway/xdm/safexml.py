"""Hostile-input XML parsing for XDM: defusedxml, bounded, with messages that name the member.

It owns turning the bytes of METADATA.XML or of a CDA document into an
ElementTree, refusing any DOCTYPE (hence every internal or external entity:
no XXE, no "billion laughs", no network or file access), any document larger
than the caller's byte bound and any tree with more elements than the
caller's element bound. It can stop early (a CDA header is read without
building the body). It never resolves anything, never logs, and every failure
is an :class:`~gateway.xdm.errors.XdmError` naming the member.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET  # the Element type only: parsing goes through defusedxml
from collections.abc import Callable

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden

from gateway.xdm.errors import XdmLimitExceeded, XdmMalformed, XdmUnsafeXml

__all__ = ["parse_xml"]

# Called on each element start with (tag, depth; the root is depth 0): True stops parsing.
StopAt = Callable[[str, int], bool]

_EXTERNAL = re.compile(rb"<!ENTITY[^>]*\b(?:SYSTEM|PUBLIC)\b")


def _unsafe(exc: DefusedXmlException, data: bytes, member: str) -> XdmUnsafeXml:
    # The DOCTYPE is refused whatever it holds; the bytes only refine the message.
    if isinstance(exc, DTDForbidden | EntitiesForbidden) and _EXTERNAL.search(data):
        what = "an external entity (XXE) in a DOCTYPE"
    elif isinstance(exc, DTDForbidden | EntitiesForbidden) and b"<!ENTITY" in data:
        what = "entity declarations (entity expansion) in a DOCTYPE"
    elif isinstance(exc, DTDForbidden):
        what = "a DOCTYPE (DTD)"
    else:
        what = f"an unsupported construct ({type(exc).__name__})"
    return XdmUnsafeXml(
        f"refused XML with {what}: DTDs and entities are never allowed",
        member=member,
        field="DOCTYPE",
    )


def parse_xml(
    data: bytes, *, member: str, max_bytes: int, max_elements: int, stop: StopAt | None = None
) -> ET.Element:
    """The root element of ``data``, parsed safely; only the part before ``stop`` if given.

    Why a pull parser: the element count is checked as the tree grows, so a
    flat-but-huge document fails fast instead of exhausting memory.
    """
    if len(data) > max_bytes:
        raise XdmLimitExceeded(
            f"XML of {len(data)} bytes exceeds the {max_bytes}-byte limit",
            member=member,
            field="size",
        )
    root: ET.Element | None = None
    depth = -1
    count = 0
    try:
        for event, elem in SafeET.iterparse(
            io.BytesIO(data),
            events=("start", "end"),
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        ):
            if event == "end":
                depth -= 1
                continue
            depth += 1
            count += 1
            if root is None:
                root = elem
            if count > max_elements:
                raise XdmLimitExceeded(
                    f"XML has more than {max_elements} elements", member=member, field="elements"
                )
            if stop is not None and stop(elem.tag, depth):
                break
    except DefusedXmlException as exc:
        raise _unsafe(exc, data, member) from None
    except ET.ParseError as exc:
        raise XdmMalformed(f"malformed XML ({exc})", member=member, field="xml") from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding declaration
        raise XdmMalformed(
            f"unreadable XML ({type(exc).__name__})", member=member, field="xml"
        ) from None
    if root is None:
        raise XdmMalformed("empty XML document", member=member, field="xml")
    return root
