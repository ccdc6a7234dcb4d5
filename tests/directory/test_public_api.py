"""Pins the directory package's public names: changing them is a decision, not an accident."""

from __future__ import annotations

import pytest

from tests.support.public_api import check_public_names

PUBLIC = {
    "directory": [
        "DELEGABLE_KINDS",
        "DelegationRefused",
        "Directory",
        "DirectoryAdmin",
        "DirectoryError",
        "DirectoryStats",
        "DirectoryUnavailable",
        "Entry",
        "InvalidAddress",
        "MailboxKind",
        "NotInDirectory",
        "may_act_for",
        "normalize_address",
        "split_address",
    ],
    "directory.extraction": [
        "COLUMNS",
        "MAX_LINE",
        "AddressIndex",
        "ParsedRow",
        "Record",
        "RowError",
        "iter_records",
        "parse_extraction",
    ],
    "directory.cache": ["CacheStats", "CachedDirectory"],
    "directory.ldap": [
        "ATTRIBUTES",
        "CERT_ATTR",
        "LdapConfig",
        "LdapDirectory",
        "LdapError",
        "describe_error",
        "ensure_containers",
        "entry_attrs",
        "entry_from_ldap",
        "filter_eq",
    ],
    "directory.ldap_import": ["import_extraction_ldap", "import_trustlist_ldap"],
    "directory.searchtext": ["fold", "search_text", "words"],
    "directory.sql": ["DB_ERRORS", "SqlDirectory", "bump_generation", "unavailable"],
    "directory.sql_import": [
        "ImportReport",
        "Progress",
        "SourceReadError",
        "import_extraction",
        "import_trustlist",
    ],
    "directory.tables": [
        "directory_certificate",
        "directory_delegation",
        "directory_entry",
        "directory_state",
        "directory_trusted_domain",
        "metadata",
    ],
    "directory.trustlist": ["NAMESPACE", "TrustListError", "parse_trustlist"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module: str) -> None:
    check_public_names(module, PUBLIC[module])


def test_directory_tables_are_its_own() -> None:
    from directory.tables import metadata

    assert sorted(metadata.tables) == [
        "directory_certificate",
        "directory_delegation",
        "directory_entry",
        "directory_state",
        "directory_trusted_domain",
    ]
