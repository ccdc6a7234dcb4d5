"""Pure parser of the liste blanche: the trust space's operator domains.

The XML comes from outside, so it is parsed with defusedxml: a DOCTYPE, an
entity declaration or an external reference is refused outright (no XXE, no
entity expansion bomb). Every domain is validated and lower-cased.
"""

from __future__ import annotations

import re
from typing import IO

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from directory.base import DirectoryError

__all__ = ["NAMESPACE", "TrustListError", "parse_trustlist"]

NAMESPACE = "https://listeblanche.mssante.fr/schema"
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_MAX_BYTES = 32 * 1024 * 1024


class TrustListError(DirectoryError, ValueError):
    """The liste blanche is unsafe or malformed; the message says where."""


def parse_trustlist(source: IO[bytes]) -> list[str]:
    data = source.read(_MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:
        raise TrustListError(f"liste blanche larger than {_MAX_BYTES} bytes")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except DefusedXmlException as exc:
        raise TrustListError(f"refused unsafe XML construct: {type(exc).__name__}") from None
    except SafeET.ParseError as exc:
        raise TrustListError(f"malformed XML: {exc}") from None
    if root.tag != f"{{{NAMESPACE}}}ListeBlanche":
        raise TrustListError(f"root element must be ListeBlanche in namespace {NAMESPACE}")
    domains: set[str] = set()
    for i, dom in enumerate(root.findall(f"{{{NAMESPACE}}}Domaine"), start=1):
        name = dom.find(f"{{{NAMESPACE}}}Nom")
        value = (name.text or "").strip().lower().rstrip(".") if name is not None else ""
        if not _DOMAIN_RE.match(value):
            raise TrustListError(f"Domaine #{i}: invalid or missing Nom {value!r}")
        domains.add(value)
    return sorted(domains)
