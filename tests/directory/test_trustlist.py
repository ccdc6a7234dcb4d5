"""The liste blanche parser: valid domains in, unsafe or malformed XML refused by name."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from directory.trustlist import TrustListError, parse_trustlist

FIX = Path(__file__).parent.parent / "fixtures" / "directory"
NS = b'xmlns="https://listeblanche.mssante.fr/schema"'


def _doc(*names: bytes) -> bytes:
    body = b"".join(b"<Domaine><Nom>" + n + b"</Nom></Domaine>" for n in names)
    return b"<ListeBlanche " + NS + b">" + body + b"</ListeBlanche>"


def test_sample_gives_sorted_lowercase_domains() -> None:
    with (FIX / "liste-blanche-sample.xml").open("rb") as fh:
        domains = parse_trustlist(fh)
    assert len(domains) == 20 and domains == sorted(domains)
    assert "ch-arras.mssante.fr" in domains and "medecin.mssante.fr" in domains


def test_domains_are_normalised_and_deduplicated() -> None:
    doc = _doc(b" CH-Arras.MSSante.fr. ", b"ch-arras.mssante.fr", b"b.fr")
    assert parse_trustlist(io.BytesIO(doc)) == ["b.fr", "ch-arras.mssante.fr"]


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
<Domaine><Nom>&e;</Nom></Domaine></ListeBlanche>"""
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
<Domaine><Nom>&b;</Nom></Domaine></ListeBlanche>"""
PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:1/evil.dtd"> %p;]>
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema"/>"""
DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE ListeBlanche SYSTEM "http://127.0.0.1:1/liste.dtd">
<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
<Domaine><Nom>a.fr</Nom></Domaine></ListeBlanche>"""


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (XXE, "refused unsafe XML: a DOCTYPE"),
        (BOMB, "refused unsafe XML: a DOCTYPE"),
        (PARAMETER, "refused unsafe XML: a DOCTYPE"),
        (DTD_ONLY, "refused unsafe XML: a DOCTYPE"),
        (b"<ListeBlanche", "malformed XML"),
        (b"<ListeBlanche/>", "root element must be ListeBlanche in namespace"),
        (b"<Other " + NS + b"/>", "root element"),
        (b"<ListeBlanche " + NS + b"/>", "refusing an empty list"),
        (_doc(b"not a domain"), "Domaine #1: invalid domain"),
        (_doc(b"a.fr", b"b..fr"), "Domaine #2: invalid domain"),
        (_doc(b"a.fr", b"user@b.fr"), "Domaine #2"),
        (b"<ListeBlanche " + NS + b"><Domaine/></ListeBlanche>", "Domaine #1: missing Nom"),
    ],
)
def test_unsafe_or_bad_xml_is_refused_by_name(doc: bytes, message: str) -> None:
    with pytest.raises(TrustListError, match=message) as caught:
        parse_trustlist(io.BytesIO(doc))
    assert "root:" not in str(caught.value)  # /etc/passwd was never read into the message


def test_oversized_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("directory.trustlist._MAX_BYTES", 100)
    with pytest.raises(TrustListError, match="larger than 100 bytes"):
        parse_trustlist(io.BytesIO(_doc(b"a.fr", b"b.fr", b"c.fr")))
