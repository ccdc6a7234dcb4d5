"""Pure parser of the liste blanche: the trust space's operator domains.

It owns reading the ``ListeBlanche/Domaine/Nom`` XML (namespace
``https://listeblanche.mssante.fr/schema``) into a sorted list of lower-case
domains. The file comes from outside, so it is parsed with defusedxml and any
DOCTYPE, entity declaration or external reference is refused outright: it must
never resolve an entity, fetch a URL or read a local file (no XXE, no
"billion laughs"). It never touches a database; every problem is a
:class:`TrustListError` naming what and where.
"""

from __future__ import annotations

import re
from typing import IO

import defusedxml.ElementTree as SafeET
from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)

from directory.base import DirectoryError

__all__ = ["NAMESPACE", "TrustListError", "parse_trustlist"]

NAMESPACE = "https://listeblanche.mssante.fr/schema"
_ROOT = f"{{{NAMESPACE}}}ListeBlanche"
_DOMAINE = f"{{{NAMESPACE}}}Domaine"
_NOM = f"{{{NAMESPACE}}}Nom"
# RFC 1035 §2.3.4 / RFC 5321 §4.5.3.1.2: labels ≤ 63, name ≤ 253 without the root dot.
_DOMAIN_RE = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_MAX_BYTES = 32 * 1024 * 1024


class TrustListError(DirectoryError, ValueError):
    """The liste blanche is unsafe or malformed; the message says what and where."""


def _refusal(exc: DefusedXmlException) -> str:
    if isinstance(exc, DTDForbidden):
        return "a DOCTYPE (DTD) is not allowed in the liste blanche"
    if isinstance(exc, EntitiesForbidden):
        return "entity declarations are not allowed in the liste blanche"
    if isinstance(exc, ExternalReferenceForbidden):
        return "external references are not allowed in the liste blanche"
    return f"unsupported XML construct ({type(exc).__name__})"


def parse_trustlist(source: IO[bytes]) -> list[str]:
    """The sorted, de-duplicated, lower-case domains of a liste blanche file object."""
    data = source.read(_MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:
        raise TrustListError(f"liste blanche larger than {_MAX_BYTES} bytes")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise TrustListError(f"refused unsafe XML: {_refusal(exc)}") from None
    except SafeET.ParseError as exc:
        raise TrustListError(f"malformed XML: {exc}") from None
    if root.tag != _ROOT:
        raise TrustListError(
            f"root element must be ListeBlanche in namespace {NAMESPACE}, got {root.tag!r}"
        )
    domains: set[str] = set()
    for i, dom in enumerate(root.iter(_DOMAINE), start=1):
        name = dom.find(_NOM)
        if name is None:
            raise TrustListError(f"Domaine #{i}: missing Nom")
        value = (name.text or "").strip().lower().rstrip(".")
        if not _DOMAIN_RE.fullmatch(value):
            raise TrustListError(f"Domaine #{i}: invalid domain in Nom {value[:80]!r}")
        domains.add(value)
    if not domains:
        raise TrustListError(f"no Domaine/Nom in namespace {NAMESPACE}: refusing an empty list")
    return sorted(domains)
