"""Directory fixtures: a fresh LDAP subtree per test on the session's slapd."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from directory.ldap import LdapConfig, LdapDirectory
from tests.support.slapd import ROOT_DN, ROOT_PW, Slapd, new_subtree

FIX = Path(__file__).parent.parent / "fixtures" / "directory"


def ldap_config(server: Slapd, base: str, **kw: object) -> LdapConfig:
    return LdapConfig(url=server.url, base_dn=base, bind_dn=ROOT_DN, bind_password=ROOT_PW,
                      **kw)  # type: ignore[arg-type]


@pytest.fixture
async def ldap_dir(slapd: Slapd) -> AsyncIterator[LdapDirectory]:
    directory = LdapDirectory(ldap_config(slapd, new_subtree(slapd), timeout=3.0))
    yield directory
    await directory.aclose()
