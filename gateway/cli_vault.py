"""``pli vault verify|rotate-kek`` and ``pli audit export``: vault and audit upkeep."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import Settings
from gateway.errors import PliError
from vault import audit

__all__ = ["add_parser", "export_audit", "run"]


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    v = sub.add_parser("vault", help="the encrypted vault").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = v.add_parser("verify", help="decrypt and check every object (tags and digests)")
    common(p)
    p = v.add_parser("rotate-kek", help="new key-encryption key; re-wrap every data key")
    common(p)
    p.add_argument("--resume", action="store_true",
                   help="no new key: finish re-wrapping under the current one")
    p.add_argument("--drop-unused", action="store_true",
                   help="then remove from the key file the keys nothing uses any more")


def _progress(label: str) -> Callable[[int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(n: int) -> None:
        sys.stderr.write(f"\r{label}: {n:,}")
        sys.stderr.flush()

    return show


async def _event(engine: AsyncEngine, action: str, result: str = "ok",
                 **detail: str | int | bool) -> None:
    async with engine.begin() as conn:
        await audit.append(conn, audit.AuditEvent(
            action=action, actor=f"cli:{getpass.getuser()}", result=result, detail=detail))


async def run(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from vault import maintenance
    from vault.keys import KeyFileProvider
    from vault.service import Vault

    env_key = os.environ.get("PLI_VAULT_KEK_HEX")
    if args.action == "rotate-kek":
        if env_key:
            raise PliError("the key-encryption key comes from PLI_VAULT_KEK_HEX: rotate it "
                           "where it is kept, then set the old one second in a key file")
        path = settings.kek_path()
        keys = (KeyFileProvider.from_file(path) if args.resume
                else maintenance.rotate_kek_file(path))
        report = await maintenance.rewrap(engine, keys, _progress("re-wrapped"))
        dropped = await maintenance.drop_unused_keks(engine, path) if args.drop_unused else []
        await _event(engine, "vault.kek_rotated", kek_id=report.new_kek_id,
                     rewrapped=report.rewrapped, dropped=len(dropped))
        print(f"current key-encryption key {report.new_kek_id}: {report.rewrapped} data keys "
              f"re-wrapped; {len(dropped)} old keys removed from {path}")
        return 0
    from contextlib import AsyncExitStack

    from gateway.app import open_blob_store

    keys = KeyFileProvider.from_file(settings.kek_path(), env_key)
    async with AsyncExitStack() as stack:
        vault = Vault(engine, await open_blob_store(settings, stack), keys,
                      settings.vault.chunk_size)
        result = await maintenance.verify_objects(engine, vault, _progress("verified"))
    for name, reason in result.failures:
        print(f"pli: object {name}: {reason}", file=sys.stderr)
    await _event(engine, "vault.verify", result="ok" if result.ok else "fail",
                 checked=result.checked, failed=len(result.failures))
    print(f"{result.checked} objects checked ({result.bytes} bytes), "
          f"{len(result.failures)} failed")
    return 0 if result.ok else 1


async def export_audit(engine: AsyncEngine, flt: audit.AuditFilter) -> int:
    """JSON lines with each entry's hash and previous hash: checkable outside pli."""
    count = 0
    async for rec in audit.query(engine, flt):
        print(json.dumps(rec.as_dict(), sort_keys=True, ensure_ascii=False))
        count += 1
    return count
