"""The LDAP directory against a real slapd: import, lookups, injection, restart, timeouts."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import ldap
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import (
    DelegationRefused,
    Directory,
    DirectoryAdmin,
    DirectoryUnavailable,
    MailboxKind,
    NotInDirectory,
)
from directory.ldap import LdapConfig, LdapDirectory
from directory.ldap_import import import_extraction_ldap, import_trustlist_ldap
from directory.sql import SqlDirectory
from directory.sql_import import import_extraction
from directory.trustlist import parse_trustlist
from gateway.base.db import create_engine
from gateway.migrations import migrate
from tests.directory.conftest import FIX, edited_sample, ldap_config
from tests.support.slapd import ROOT_DN, ROOT_PW, Slapd, new_subtree

SAMPLE = FIX / "extraction-sample.txt"
BAD = FIX / "extraction-bad.txt"
SOPHIE = "sophie.bernard@ch-arras.mssante.fr"
ORG = "secretariat.geriatrie@ch-arras.mssante.fr"
APP = "dpi@ch-arras.mssante.fr"


def _raw(d: LdapDirectory) -> ldap.ldapobject.LDAPObject:
    conn = ldap.initialize(d.config.url)
    conn.simple_bind_s(ROOT_DN, ROOT_PW)
    return conn


def _certificate(address: str) -> bytes:
    """A self-signed S/MIME-style certificate (slapd checks the certificate syntax)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _addresses(path: Path) -> list[str]:
    return [line.split("|")[1] for line in path.read_text().splitlines()[1:] if line]


async def test_import_gives_the_same_entries_as_sql(
    ldap_dir: LdapDirectory, tmp_path: Path
) -> None:
    report = await import_extraction_ldap(ldap_dir, SAMPLE)
    assert report.ok and (report.rows, report.added, report.changed, report.removed) == (
        200,
        200,
        0,
        0,
    )
    assert isinstance(ldap_dir, Directory) and isinstance(ldap_dir, DirectoryAdmin)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ref.db'}")
    try:
        await migrate(engine)
        await import_extraction(engine, SAMPLE)
        sql = SqlDirectory(engine)
        for address in _addresses(SAMPLE):
            assert await ldap_dir.resolve(address) == await sql.resolve(address), address
        for text in ("bernard", "gériatrie arras", "62000", "kinésithérapeute", "dhondt"):
            assert [e.address for e in await ldap_dir.search(text, limit=500)] == [
                e.address for e in await sql.search(text, limit=500)
            ], text
    finally:
        await engine.dispose()
    entry = await ldap_dir.resolve("Sophie.Bernard@CH-Arras.mssante.fr")
    assert entry is not None and entry.kind is MailboxKind.PER
    assert entry.display_name == "Dr Sophie BERNARD" and entry.id_nat_pp == "810990000027"
    assert await ldap_dir.resolve("nobody@ch-arras.mssante.fr") is None


async def test_reimport_synchronises_and_keeps_operator_data(
    ldap_dir: LdapDirectory, tmp_path: Path
) -> None:
    await import_extraction_ldap(ldap_dir, SAMPLE)
    assert await ldap_dir.set_delegation(ORG, SOPHIE)
    again = await import_extraction_ldap(ldap_dir, SAMPLE)
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, 200)
    edited = edited_sample(tmp_path)
    dry = await import_extraction_ldap(ldap_dir, edited, dry_run=True)
    assert (dry.added, dry.changed, dry.removed) == (1, 1, 1) and dry.dry_run
    assert await ldap_dir.resolve("nouvelle.arrivee@ch-arras.mssante.fr") is None
    done = await import_extraction_ldap(ldap_dir, edited)
    assert (done.added, done.changed, done.removed, done.unchanged) == (1, 1, 1, 198)
    removed, changed = _addresses(SAMPLE)[10], _addresses(SAMPLE)[5]
    assert await ldap_dir.resolve(removed) is None
    entry = await ldap_dir.resolve(changed)
    assert entry is not None and entry.service == "Service renommé"
    assert await ldap_dir.resolve("nouvelle.arrivee@ch-arras.mssante.fr") is not None
    assert await ldap_dir.delegates(ORG) == {SOPHIE}  # an import never drops delegations


async def test_bad_rows_abort_before_anything_is_written(ldap_dir: LdapDirectory) -> None:
    report = await import_extraction_ldap(ldap_dir, BAD, max_errors=3)
    assert report.aborted and "more than 3 bad rows" in report.abort_reason
    assert [e.line_no for e in report.errors][:3] == sorted(e.line_no for e in report.errors)[:3]
    assert (await ldap_dir.stats()).entries == 0
    lenient = await import_extraction_ldap(ldap_dir, BAD, max_errors=100)
    assert lenient.ok and lenient.error_count == 10
    assert all(e.line_no > 1 and e.reason for e in lenient.errors)
    assert (await ldap_dir.stats()).entries == lenient.rows


async def test_filter_injection_finds_nothing(ldap_dir: LdapDirectory) -> None:
    await import_extraction_ldap(ldap_dir, SAMPLE)
    # '*' is a legal local-part character: escaped, it matches no mailbox at all.
    assert await ldap_dir.resolve("*@ch-arras.mssante.fr") is None
    assert await ldap_dir.resolve("sophie.bernard*@ch-arras.mssante.fr") is None
    assert await ldap_dir.resolve("*)(mail=*") is None
    assert await ldap_dir.resolve("x@y.fr)(|(objectClass=*)") is None
    assert not await ldap_dir.is_trusted_domain("*")
    assert not await ldap_dir.is_trusted_domain("*)(objectClass=*")
    assert await ldap_dir.delegates("*@ch-arras.mssante.fr") == frozenset()
    assert await ldap_dir.delegated_mailboxes("*@ch-arras.mssante.fr") == frozenset()
    for text in ("*", ")(objectClass=*", "\\2a", "\x00", "(|(mail=*))", "*)(pliListeRouge=*"):
        found = await ldap_dir.search(text, limit=500)
        assert len(found) < 200, text  # never "everything"


async def test_liste_rouge_certificates_and_stats(ldap_dir: LdapDirectory) -> None:
    await import_extraction_ldap(ldap_dir, SAMPLE)
    conn = _raw(ldap_dir)
    dn = ldap_dir.config.mailbox_dn(SOPHIE)
    der = _certificate(SOPHIE)
    conn.modify_s(
        dn,
        [
            (ldap.MOD_ADD, "pliListeRouge", [b"TRUE"]),
            (ldap.MOD_ADD, "userCertificate;binary", [der]),
        ],
    )
    conn.unbind_s()
    assert SOPHIE not in [e.address for e in await ldap_dir.search("bernard")]
    entry = await ldap_dir.resolve(SOPHIE)
    assert entry is not None and entry.liste_rouge and entry.certificates == (der,)
    assert await ldap_dir.certificates(SOPHIE) == (der,)
    stats = await ldap_dir.stats()
    assert stats.entries == 200 and stats.entries_by_kind["PER"] == 141
    assert stats.liste_rouge == 1 and stats.certificates == 1


async def test_delegation_rules(ldap_dir: LdapDirectory) -> None:
    await import_extraction_ldap(ldap_dir, SAMPLE)
    assert await ldap_dir.set_delegation(ORG, SOPHIE) is True
    assert await ldap_dir.set_delegation(ORG.upper(), SOPHIE) is False  # already there
    assert await ldap_dir.set_delegation(APP, SOPHIE) is True
    assert await ldap_dir.delegates(ORG) == {SOPHIE}
    assert await ldap_dir.delegated_mailboxes(SOPHIE) == {ORG, APP}
    with pytest.raises(DelegationRefused, match="PER mailbox"):
        await ldap_dir.set_delegation(SOPHIE, "jean.petit@medecin.mssante.fr")
    with pytest.raises(DelegationRefused, match="only a person"):
        await ldap_dir.set_delegation(ORG, APP)
    with pytest.raises(NotInDirectory):
        await ldap_dir.set_delegation("nobody@ch-arras.mssante.fr", SOPHIE)
    assert await ldap_dir.set_delegation(ORG, SOPHIE, revoke=True) is True
    assert await ldap_dir.set_delegation(ORG, SOPHIE, revoke=True) is False
    assert await ldap_dir.delegated_mailboxes(SOPHIE) == {APP}


async def test_trustlist(ldap_dir: LdapDirectory) -> None:
    domains = parse_trustlist((FIX / "liste-blanche-sample.xml").open("rb"))
    assert await import_trustlist_ldap(ldap_dir, domains) == len(domains)
    assert await ldap_dir.is_trusted_domain(domains[0].upper() + ".")
    assert await import_trustlist_ldap(ldap_dir, domains[1:]) == len(domains) - 1
    assert not await ldap_dir.is_trusted_domain(domains[0])
    assert await ldap_dir.is_trusted_domain(domains[1])


async def test_server_restart_is_451_then_recovers(tmp_path: Path) -> None:
    server = Slapd(tmp_path)
    server.setup()
    server.start()
    directory = LdapDirectory(ldap_config(server, new_subtree(server), timeout=2.0, pool_size=2))
    try:
        await import_extraction_ldap(directory, SAMPLE)
        assert await directory.resolve(SOPHIE) is not None  # pooled connections now open
        server.stop()
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable):
            await directory.resolve(SOPHIE)
        assert time.monotonic() - started < 5
        server.start()
        # The broken pooled connections are replaced without a restart of pli.
        results = await asyncio.gather(*(directory.resolve(SOPHIE) for _ in range(8)))
        assert all(r is not None and r.address == SOPHIE for r in results)
    finally:
        await directory.aclose()
        server.stop()


async def test_silent_server_times_out() -> None:
    # A server that accepts the connection and never answers (a hung replica).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        directory = LdapDirectory(
            LdapConfig(
                url=f"ldap://127.0.0.1:{port}",
                base_dn="dc=pli,dc=test",
                bind_dn=ROOT_DN,
                bind_password=ROOT_PW,
                timeout=1.0,
            )
        )
        try:
            started = time.monotonic()
            with pytest.raises(DirectoryUnavailable):
                await directory.resolve(SOPHIE)
            assert time.monotonic() - started < 6
        finally:
            await directory.aclose()


async def test_wrong_credentials_are_named(slapd: Slapd) -> None:
    directory = LdapDirectory(
        LdapConfig(url=slapd.url, base_dn="dc=pli,dc=test", bind_dn=ROOT_DN, bind_password="wrong")
    )
    try:
        with pytest.raises(DirectoryUnavailable, match="bind_dn"):
            await directory.resolve(SOPHIE)
    finally:
        await directory.aclose()


async def test_same_answers_through_cache_and_sql_generation(
    ldap_dir: LdapDirectory, engine: AsyncEngine
) -> None:
    from directory.cache import CachedDirectory
    from directory.sql import bump_generation

    await import_extraction_ldap(ldap_dir, SAMPLE)
    cached = CachedDirectory(ldap_dir, generation=SqlDirectory(engine).generation, check_interval=0)
    assert await cached.delegates(ORG) == frozenset()
    await ldap_dir.set_delegation(ORG, SOPHIE)
    assert await cached.delegates(ORG) == frozenset()  # cached until the generation moves
    async with engine.begin() as conn:
        await bump_generation(conn)
    assert await cached.delegates(ORG) == {SOPHIE}
