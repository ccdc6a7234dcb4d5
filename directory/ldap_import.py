"""``pli directory import --to ldap``: load the national extraction into an LDAP server.

LDAP has no transactions, so the import checks before it writes: a first pass
parses the whole file and aborts, with nothing written, on a bad header, on
more than ``max_errors`` bad rows or on a file without a valid row (which
would empty the directory). The second pass synchronises batch by batch: one
search finds which addresses exist and their row digests, then the adds and
modifies of the batch are sent pipelined on one connection. Last, entries the
file no longer lists are deleted. An import interrupted by a server failure
leaves some batches applied; running it again converges (adds, changes and
removals are computed against what is stored). Operator data on entries
(delegations, certificates, liste rouge) is never touched by an import.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import IO, Any

import ldap
from ldap.ldapobject import LDAPObject

from directory.extraction import AddressIndex, Record, RowError, iter_records
from directory.ldap import (
    ATTRIBUTES,
    LdapDirectory,
    LdapError,
    ensure_containers,
    entry_attrs,
    filter_eq,
)
from directory.sql_import import ImportReport, Progress, SourceReadError

__all__ = ["import_extraction_ldap", "import_trustlist_ldap"]

_BATCH = 500


def _open(source: str | os.PathLike[str]) -> IO[bytes]:
    try:
        return Path(source).open("rb")
    except OSError as exc:
        raise SourceReadError(f"cannot read the extraction: {exc}") from exc


def _check(
    source: str | os.PathLike[str], report: ImportReport, max_errors: int, keep_errors: int
) -> int:
    """First pass: count valid rows and errors; return the number of valid rows."""
    valid = 0
    with _open(source) as fh:
        try:
            for item in iter_records(fh, AddressIndex()):
                if isinstance(item, RowError):
                    report.error_count += 1
                    if len(report.errors) < keep_errors:
                        report.errors.append(item)
                    if item.line_no == 1:
                        report.aborted, report.abort_reason = (
                            True,
                            f"not an extraction: {item.reason}",
                        )
                        return valid
                    if report.error_count > max_errors:
                        report.aborted, report.abort_reason = (
                            True,
                            f"more than {max_errors} bad rows",
                        )
                        return valid
                else:
                    valid += 1
        except OSError as exc:
            raise SourceReadError(f"cannot read the extraction: {exc}") from exc
    return valid


def _batches(fh: IO[bytes], index: AddressIndex) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for item in iter_records(fh, index):
        if isinstance(item, RowError):
            continue  # counted and reported by the first pass
        batch.append(item)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _modlist_replace(attrs: dict[str, list[bytes]]) -> list[tuple[int, str, Any]]:
    """Replace every imported attribute; an emptied field deletes the attribute."""
    mods: list[tuple[int, str, Any]] = []
    for attr in (
        *(a for f, a in ATTRIBUTES.items() if f != "address"),
        "pliRowHash",
        "pliSearchText",
    ):
        mods.append((ldap.MOD_REPLACE, attr, attrs.get(attr)))
    return mods


def _apply(
    directory: LdapDirectory, conn: LDAPObject, *, batch: list[Record], dry_run: bool
) -> ImportReport:
    """Compare one batch with the server and write the differences (pipelined).

    Returns the batch's counts, merged by the caller only once the batch is done
    (the pool retries a batch whose connection broke).
    """
    report = ImportReport(dry_run=dry_run)
    cfg = directory.config
    ors = "".join(filter_eq("mail", r.address) for r in batch)
    found = conn.search_ext_s(
        cfg.base_dn,
        ldap.SCOPE_SUBTREE,
        f"(&(objectClass=pliMailbox)(|{ors}))",
        ["mail", "pliRowHash"],
        timeout=cfg.timeout,
    )
    stored: dict[str, tuple[str, str]] = {}
    for dn, attrs in found:
        if dn is None or not isinstance(attrs, dict):
            continue
        low = {k.lower(): v for k, v in attrs.items()}
        mail = low.get("mail", [b""])[0].decode().lower()
        digest = low.get("plirowhash", [b""])[0].decode()
        stored[mail] = (dn, digest)
    pending: list[int] = []
    for rec in batch:
        digest = rec.digest()
        attrs = entry_attrs(rec.entry(), digest, rec.search_text())
        if rec.address not in stored:
            report.added += 1
            if not report.dry_run:
                add = [("objectClass", [b"pliMailbox"]), *attrs.items()]
                pending.append(conn.add_ext(cfg.mailbox_dn(rec.address), add))
        elif stored[rec.address][1] != digest:
            report.changed += 1
            if not report.dry_run:
                pending.append(conn.modify_ext(stored[rec.address][0], _modlist_replace(attrs)))
        else:
            report.unchanged += 1
    for msgid in pending:
        conn.result3(msgid, timeout=cfg.timeout)
    return report


def _remove_unlisted(
    directory: LdapDirectory, conn: LDAPObject, index: AddressIndex, report: ImportReport
) -> None:
    gone = [
        dn
        for dn, attrs in directory.paged(conn, "(objectClass=pliMailbox)", ["mail"])
        if attrs.get("mail", [b""])[0].decode().lower() not in index
    ]
    report.removed = len(gone)
    if report.dry_run:
        return
    for start in range(0, len(gone), _BATCH):
        ids = [conn.delete_ext(dn) for dn in gone[start : start + _BATCH]]
        for msgid in ids:
            conn.result3(msgid, timeout=directory.config.timeout)


def _count_mailboxes(directory: LdapDirectory, conn: LDAPObject) -> int:
    return sum(1 for _ in directory.paged(conn, "(objectClass=pliMailbox)", ["mail"]))


async def import_extraction_ldap(
    directory: LdapDirectory,
    source: str | os.PathLike[str],
    *,
    dry_run: bool = False,
    max_errors: int = 100,
    keep_errors: int = 1000,
    progress: Progress | None = None,
) -> ImportReport:
    """Make the LDAP directory's mailboxes exactly the file's valid rows.

    Raises :class:`DirectoryUnavailable` (an :class:`LdapError` when the server
    refused a write) if the server fails part way: run the import again.
    """
    report = ImportReport(dry_run=dry_run)
    valid = await asyncio.to_thread(_check, source, report, max_errors, keep_errors)
    if report.aborted:
        return report
    if valid == 0 and await directory.run(lambda c: _count_mailboxes(directory, c)) > 0:
        report.aborted, report.abort_reason = True, "no valid row: refusing to empty the directory"
        return report
    if not dry_run:
        await directory.run(lambda c: ensure_containers(directory, c))
    index = AddressIndex()
    fh = await asyncio.to_thread(_open, source)
    try:
        batches = _batches(fh, index)
        while batch := await asyncio.to_thread(next, batches, None):
            done = await directory.run(partial(_apply, directory, batch=batch, dry_run=dry_run))
            report.added += done.added
            report.changed += done.changed
            report.unchanged += done.unchanged
            report.rows += len(batch)
            if progress is not None:
                progress(fh.tell(), report.rows)
        await directory.run(lambda c: _remove_unlisted(directory, c, index, report))
    except LdapError as exc:
        raise LdapError(f"{exc}: the import stopped part way, run it again") from exc
    finally:
        await asyncio.to_thread(fh.close)
    return report


async def import_trustlist_ldap(directory: LdapDirectory, domains: list[str]) -> int:
    """Make the ``pliTrustedDomain`` entries exactly ``domains``; return their count."""
    wanted = {d.lower() for d in domains}

    def op(conn: LDAPObject) -> int:
        ensure_containers(directory, conn)
        have = {
            a.get("pliDomain", [b""])[0].decode().lower(): dn
            for dn, a in directory.paged(conn, "(objectClass=pliTrustedDomain)", ["pliDomain"])
        }
        for domain in sorted(wanted - have.keys()):
            conn.add_s(
                directory.config.domain_dn(domain),
                [("objectClass", [b"pliTrustedDomain"]), ("pliDomain", [domain.encode()])],
            )
        for domain in sorted(have.keys() - wanted):
            conn.delete_s(have[domain])
        return len(wanted)

    return await directory.run(op)
