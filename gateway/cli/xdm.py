"""``pli xdm build|check``: make an IHE XDM package from CDA files, or check one.

It only reads the files named on the command line, calls the pure functions
of :mod:`gateway.xdm` and prints; no database, no network. Bad input ends
with exit code 1 and one line on stderr naming the member and field at
fault (never a traceback, never document content). The INS itself is shown
by ``check`` only because the operator asked to inspect that very package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.base.config import Settings
from gateway.xdm import (
    INS_NIR,
    Ins,
    XdmError,
    XdmLimits,
    XdmPackage,
    build_xdm,
    format_xds,
    inspect_xdm,
    mss_headers,
    parse_ins,
)
from gateway.xdm.ins import ins_from_xds

__all__ = ["add_parser", "command", "run"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    x = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = x.add_parser("build", help="package CDA documents as an IHE XDM zip")
    common(p)
    p.add_argument("cda", nargs="+", type=Path, metavar="CDA_FILE", help="HL7 CDA R2 document")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.zip")
    p.add_argument(
        "--ins",
        help="the patient's INS (15 characters, or the XDS form "
        "INS^^^&OID&ISO^NH) for documents that carry none",
    )
    p.add_argument(
        "--ins-oid",
        default=INS_NIR,
        help=f"OID of a 15-character --ins (default {INS_NIR}, INS-NIR)",
    )
    p = x.add_parser("check", help="check an XDM zip: hashes, sizes, INS, X-MSS headers")
    common(p)
    p.add_argument("zip", type=Path, metavar="ZIP")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument(
        "--allow-no-ins",
        action="store_true",
        help="accept documents whose patient id is not an INS (X-MSS-INS: N)",
    )


def _read(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise XdmError(
            f"cannot read {path}: {exc.strerror or type(exc).__name__}", field="file"
        ) from None
    if len(data) > limit:
        raise XdmError(f"{path} is larger than {limit} bytes", field="size")
    return data


def _ins_arg(value: str | None, oid: str) -> Ins | None:
    if not value:
        return None
    return ins_from_xds(value) if "^" in value else parse_ins(value, oid)


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename: a reader never sees half a zip."""
    directory = path.resolve().parent
    fd, tmp = tempfile.mkstemp(prefix=".pli-xdm-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _build(args: argparse.Namespace, limits: XdmLimits) -> int:
    ins = _ins_arg(args.ins, args.ins_oid)
    docs = [(p.name, _read(p, limits.max_entry_bytes)) for p in args.cda]
    data = build_xdm(docs, ins=ins, limits=limits)
    try:
        _write(args.output, data)
    except OSError as exc:
        raise XdmError(
            f"cannot write {args.output}: {exc.strerror or type(exc).__name__}", field="output"
        ) from None
    print(f"wrote {args.output}: {len(docs)} document(s), {len(data)} bytes")
    return 0


def _report(package: XdmPackage) -> dict[str, Any]:
    ins = package.patient_ins
    return {
        "ok": package.ok,
        "ins": None
        if ins is None
        else {"value": ins.value, "oid": ins.oid, "kind": ins.kind, "xds": format_xds(ins)},
        "documents": [
            {
                "name": d.name,
                "mime_type": d.mime_type,
                "size": len(d.data),
                "declared_size": d.declared_size,
                "size_ok": d.size_ok,
                "sha1": d.actual_hash,
                "declared_hash": d.declared_hash,
                "hash_ok": d.hash_ok,
                "type_code": d.type_code.code if d.type_code else None,
                "cda_code": d.cda_code.code if d.cda_code else None,
            }
            for d in package.documents
        ],
        "headers": mss_headers(package),
        "problems": [p.text for p in package.problems],
    }


def _print_text(report: dict[str, Any]) -> None:
    ins = report["ins"]
    print(f"INS: {ins['xds']} ({ins['kind']}, key OK)" if ins else "INS: none")
    for doc in report["documents"]:
        print(
            f"{doc['name']}  {doc['mime_type']}  {doc['size']} bytes "
            f"[size {'OK' if doc['size_ok'] else 'BAD'}]  "
            f"sha1 {doc['sha1']} [hash {'OK' if doc['hash_ok'] else 'BAD'}]  "
            f"type {doc['type_code'] or '-'}"
        )
    for name, value in report["headers"].items():
        print(f"{name}: {value}")


def _check(args: argparse.Namespace, limits: XdmLimits) -> int:
    try:
        package = inspect_xdm(
            _read(args.zip, limits.max_archive_bytes), limits, require_ins=not args.allow_no_ins
        )
    except XdmError as exc:
        if args.format == "json":
            print(
                json.dumps(
                    {
                        "ok": False,
                        "error": exc.text,
                        "reason": exc.reason,
                        "member": exc.member,
                        "field": exc.field,
                    },
                    ensure_ascii=False,
                )
            )
        raise
    report = _report(package)
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False, sort_keys=True))
    else:
        _print_text(report)
    if package.problems:
        print(f"pli: error: {package.problems[0].text}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Run ``pli xdm ACTION``; 0 when the package is good, 1 with one stderr line if not."""
    limits = XdmLimits()
    try:
        if args.action == "build":
            return _build(args, limits)
        return _check(args, limits)
    except XdmError as exc:
        print(f"pli: error: {exc.text}", file=sys.stderr)
        return 1


async def command(args: argparse.Namespace) -> int:
    return run(args, None)  # pure file work: no configuration, no database
