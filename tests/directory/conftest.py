"""Directory fixtures: one real slapd per test session, a fresh subtree per test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import ldap
import pytest

from directory.ldap import LdapConfig, LdapDirectory
from tests.support.slapd import BASE_DN, ROOT_DN, ROOT_PW, Slapd

FIX = Path(__file__).parent.parent / "fixtures" / "directory"


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.setup()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def new_subtree(server: Slapd) -> str:
    """An empty ``ou=`` under the test suffix: each test's own directory base."""
    base = f"ou=t{secrets.token_hex(5)},{BASE_DN}"
    conn = ldap.initialize(server.url)
    conn.simple_bind_s(ROOT_DN, ROOT_PW)
    conn.add_s(base, [("objectClass", [b"organizationalUnit"]),
                      ("ou", [base.split(",")[0][3:].encode()])])
    conn.unbind_s()
    return base


def ldap_config(server: Slapd, base: str, **kw: object) -> LdapConfig:
    return LdapConfig(url=server.url, base_dn=base, bind_dn=ROOT_DN, bind_password=ROOT_PW,
                      **kw)  # type: ignore[arg-type]


@pytest.fixture
async def ldap_dir(slapd: Slapd) -> AsyncIterator[LdapDirectory]:
    directory = LdapDirectory(ldap_config(slapd, new_subtree(slapd), timeout=3.0))
    yield directory
    await directory.aclose()
