"""``pli directory …``: import, show, search, stats, delegate, on the SQL or LDAP backend.

Parsing and printing only; the work is done by ``directory`` (backends,
importers), reached through the composition root so that no backend is named
here. Every change (import, delegation) is audited; it bumps the SQL change
generation (``DirectoryChanges``), so the caches of running instances drop
stale answers within a second, whatever the backend.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import Entry, normalize_address
from gateway.base.config import Settings
from gateway.base.errors import UsageError
from gateway.cli.common import with_database
from vault import audit

__all__ = ["add_parser", "command", "run"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    d = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = d.add_parser("import", help="import an extraction or a liste blanche")
    common(p)
    p.add_argument("file", type=Path)
    p.add_argument(
        "--format",
        choices=["extraction", "liste-blanche"],
        default=None,
        help="default: guessed from the file name (.xml is a liste blanche)",
    )
    p.add_argument(
        "--to",
        choices=["sql", "ldap"],
        default=None,
        help="target backend (default: directory.backend of the configuration)",
    )
    p.add_argument("--dry-run", action="store_true", help="report what would change")
    p.add_argument(
        "--max-errors",
        type=int,
        default=100,
        help="abort (nothing written) beyond this many bad rows",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = d.add_parser("show", help="show one directory entry")
    common(p)
    p.add_argument("address")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p = d.add_parser("search", help="find mailboxes by name, profession, structure, postcode")
    common(p)
    p.add_argument("text")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p = d.add_parser("stats", help="counts of the directory")
    common(p)
    p = d.add_parser("delegate", help="let a person act for a shared (ORG/APP/CAB) mailbox")
    common(p)
    p.add_argument("mailbox", metavar="ORG_ADDRESS")
    p.add_argument("user", metavar="USER_ADDRESS")
    p.add_argument("--revoke", action="store_true", help="withdraw the delegation")


class _ProgressBar:
    """One self-rewriting stderr line, at most five times a second."""

    def __init__(self, total: int, out: TextIO) -> None:
        self._total, self._out = max(total, 1), out
        self._started = self._shown = time.monotonic()

    def __call__(self, done_bytes: int, rows: int) -> None:
        now = time.monotonic()
        if now - self._shown < 0.2 and done_bytes < self._total:
            return
        self._shown = now
        share = min(done_bytes / self._total, 1.0)
        bar = "#" * int(share * 30)
        self._out.write(f"\r[{bar:30}] {share:6.1%} {rows:>10,} rows {now - self._started:6.1f} s")
        self._out.flush()

    def close(self) -> None:
        self._out.write("\n")
        self._out.flush()


def _entry_json(entry: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in entry.__slots__:
        value = getattr(entry, name)
        out[name] = (
            len(value) if name == "certificates" else str(value) if name == "kind" else value
        )
    return out


async def _audit(
    engine: AsyncEngine, action: str, mailbox: str = "", **detail: str | int | bool
) -> None:
    async with engine.begin() as conn:
        await audit.append(
            conn,
            audit.AuditEvent(
                action=action, actor=f"cli:{getpass.getuser()}", mailbox=mailbox, detail=detail
            ),
        )


async def _import(
    args: argparse.Namespace, settings: Settings, engine: AsyncEngine, stack: AsyncExitStack
) -> int:
    from gateway.app.backends import open_directory_changes

    target = args.to or settings.directory.backend
    fmt = args.format or ("liste-blanche" if args.file.suffix.lower() == ".xml" else "extraction")
    changes = open_directory_changes(settings, engine, stack, backend=target)
    if fmt == "liste-blanche":
        count = await changes.import_trustlist(args.file)
        await _audit(engine, "directory.import", backend=target, format=fmt, domains=count)
        print(f"trusted domains: {count} ({target})")
        return 0
    bar = None
    if not args.quiet and sys.stderr.isatty():
        bar = _ProgressBar(args.file.stat().st_size, sys.stderr)
    try:
        report = await changes.import_extraction(
            args.file, dry_run=args.dry_run, max_errors=args.max_errors, progress=bar
        )
    finally:
        if bar is not None:
            bar.close()
    for err in report.errors:
        print(f"{args.file}:{err.line_no}: {err.column or '-'}: {err.reason}", file=sys.stderr)
    if report.error_count > len(report.errors):
        print(
            f"{args.file}: … and {report.error_count - len(report.errors)} more bad rows",
            file=sys.stderr,
        )
    if not args.dry_run:
        await _audit(
            engine,
            "directory.import",
            backend=target,
            format=fmt,
            result="ok" if report.ok else "aborted",
            rows=report.rows,
            added=report.added,
            changed=report.changed,
            removed=report.removed,
            bad_rows=report.error_count,
        )
    print(report.summary())
    return 0 if report.ok else 1


async def _delegate(
    args: argparse.Namespace, settings: Settings, engine: AsyncEngine, stack: AsyncExitStack
) -> int:
    from gateway.app.backends import open_directory_changes

    changes = open_directory_changes(settings, engine, stack)
    mailbox, user = normalize_address(args.mailbox), normalize_address(args.user)
    changed = await changes.set_delegation(mailbox, user, revoke=args.revoke)
    if changed:
        await _audit(
            engine,
            "directory.revoke" if args.revoke else "directory.delegate",
            mailbox=mailbox,
            user=user,
        )
    verb = "revoked" if args.revoke else "granted"
    state = verb if changed else f"already {verb}"
    print(f"{user} acting for {mailbox}: {state}")
    return 0


async def run(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from gateway.app.backends import open_directory

    async with AsyncExitStack() as stack:
        if args.action == "import":
            return await _import(args, settings, engine, stack)
        if args.action == "delegate":
            return await _delegate(args, settings, engine, stack)
        backend = open_directory(settings, engine, stack)
        if args.action == "show":
            entry = await backend.resolve(normalize_address(args.address))
            if entry is None:
                print(f"pli: not in the directory: {args.address}", file=sys.stderr)
                return 1
            data = _entry_json(entry)
            data["delegates"] = sorted(await backend.delegates(entry.address))
            if args.format == "json":
                print(json.dumps(data, ensure_ascii=False, sort_keys=True))
            else:
                for key, value in data.items():
                    text = ", ".join(value) if isinstance(value, list) else str(value)
                    print(f"{key:16} {text.replace(chr(10), ' / ')}")
            return 0
        if args.action == "search":
            if not 1 <= args.limit <= 500:
                raise UsageError("--limit must be between 1 and 500")
            found = await backend.search(args.text, args.limit)
            for entry in found:
                if args.format == "json":
                    print(json.dumps(_entry_json(entry), ensure_ascii=False, sort_keys=True))
                else:
                    print(
                        f"{entry.address:48} {entry.kind.value:3}  {entry.display_name[:32]:32}"
                        f"  {entry.profession_label[:20]:20}  {entry.postcode}"
                    )
            if args.format == "table":
                print(f"{len(found)} found", file=sys.stderr)
            return 0
        # stats
        s = await backend.stats()
        print(f"backend          {s.backend}")
        print(f"mailboxes        {s.entries}")
        for kind in ("PER", "ORG", "APP", "CAB"):
            print(f"  {kind}            {s.entries_by_kind.get(kind, 0)}")
        print(f"liste rouge      {s.liste_rouge}")
        print(f"mail domains     {s.domains}")
        print(f"trusted domains  {s.trusted_domains}")
        print(f"delegations      {s.delegations}")
        print(f"certificates     {s.certificates}")
        return 0


command = with_database(run)
