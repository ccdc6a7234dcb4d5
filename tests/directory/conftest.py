"""Directory fixtures: a fresh LDAP subtree per test on the session's slapd."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from directory.ldap import LdapConfig, LdapDirectory
from tests.support.slapd import ROOT_DN, ROOT_PW, Slapd, new_subtree

FIX = Path(__file__).parent.parent / "fixtures" / "directory"


def edited_sample(tmp_path: Path) -> Path:
    """The sample with row 7 changed (line 7), row 12 removed (line 12), one row added."""
    lines = (FIX / "extraction-sample.txt").read_bytes().split(b"\n")
    header, rows = lines[0], [x for x in lines[1:] if x]
    fields = rows[5].split(b"|")
    fields[7] = b"Service renomm\xc3\xa9"  # Service de rattachement: a stored field
    rows[5] = b"|".join(fields)
    del rows[10]
    added = rows[20].split(b"|")
    added[1] = b"nouvelle.arrivee@ch-arras.mssante.fr"
    rows.append(b"|".join(added))
    path = tmp_path / "changed.txt"
    path.write_bytes(b"\n".join([header, *rows]) + b"\n")
    return path


def ldap_config(server: Slapd, base: str, **kw: object) -> LdapConfig:
    return LdapConfig(url=server.url, base_dn=base, bind_dn=ROOT_DN, bind_password=ROOT_PW, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def ldap_dir(slapd: Slapd) -> AsyncIterator[LdapDirectory]:
    directory = LdapDirectory(ldap_config(slapd, new_subtree(slapd), timeout=3.0))
    yield directory
    await directory.aclose()
