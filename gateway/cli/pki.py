"""``pli pki init|issue|revoke``: the development PKI under ``DATA_DIR/pki``.

Parses, calls ``gateway.smime.pki`` in a worker thread (RSA key generation
takes a while) and prints where the files are. The passphrase protecting the
private keys comes from a file or stdin (``--passphrase-file -``), never from
the command line; without one the keys are written unencrypted (mode 0600),
which is acceptable for a development PKI only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.base.config import Settings
from gateway.base.errors import ConfigError, InvalidInput
from gateway.cli.common import settings_of
from gateway.smime import pki

__all__ = ["add_parser", "command", "read_passphrase", "run"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    k = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = k.add_parser("init", help="root and intermediate CAs, TLS and mailbox certificates, CRL")
    common(p)
    _passphrase_option(p)
    p.add_argument(
        "--mailbox",
        dest="mailboxes",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="an ORG/APP mailbox to certify (repeatable)",
    )
    p.add_argument(
        "--key-size",
        type=int,
        default=3072,
        choices=(2048, 3072, 4096),
        help="RSA modulus size (default 3072)",
    )
    p = k.add_parser("issue", help="issue an S/MIME certificate for one mailbox")
    common(p)
    _passphrase_option(p)
    p.add_argument("address")
    p.add_argument(
        "--kind",
        default="PER",
        choices=("PER", "ORG", "APP", "CAB"),
        help="mailbox type, written in the certificate (default PER)",
    )
    p.add_argument("--key-size", type=int, default=3072, choices=(2048, 3072, 4096))
    p = k.add_parser("revoke", help="revoke a mailbox certificate and re-sign the CRL")
    common(p)
    _passphrase_option(p)
    p.add_argument("address")
    p = k.add_parser("hsm-import", help="move a mailbox's key into the HSM ([smime] pkcs11_*)")
    common(p)
    _passphrase_option(p)
    p.add_argument("address")
    p.add_argument(
        "--keep-file",
        action="store_true",
        help="leave the key file in place (default: remove it once in the token)",
    )


def _passphrase_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--passphrase-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="file holding the key passphrase ('-' for stdin); none: clear keys",
    )


def read_passphrase(path: Path | None) -> bytes | None:
    """The first line of ``path`` (or stdin for ``-``), without its line end; None if no path."""
    if path is None:
        return None
    raw = sys.stdin.buffer.readline() if str(path) == "-" else path.read_bytes()
    secret = raw.splitlines()[0] if raw.strip() else b""
    if not secret:
        raise InvalidInput("the passphrase is empty")
    return secret


async def run(args: argparse.Namespace, settings: Settings) -> int:
    directory = settings.data_dir / "pki"
    passphrase = read_passphrase(args.passphrase_file)
    paths = pki.PkiPaths(directory)
    if args.action == "init":
        if not settings.domains:
            raise ConfigError("no served domains in the configuration (domains = [...])")
        await asyncio.to_thread(
            pki.init_pki,
            directory,
            list(settings.domains),
            list(args.mailboxes),
            passphrase,
            key_size=args.key_size,
        )
        from gateway.core.trust import ensure_notary  # the receipts' signer (notarisation)

        await asyncio.to_thread(ensure_notary, settings, passphrase, key_size=args.key_size)
        print(
            f"PKI created in {directory}: trust anchor {paths.root_cert}, "
            f"chain {paths.chain}, CRL {paths.crl}"
        )
        for domain in settings.domains:
            print(f"  TLS {domain}: {paths.tls(domain)[0]}")
        for address in args.mailboxes:
            print(f"  S/MIME {address}: {paths.mailbox(address)[0]}")
        if passphrase is None:
            print(
                "pli: warning: private keys are not encrypted (no --passphrase-file)",
                file=sys.stderr,
            )
        return 0
    if args.action == "issue":
        issued = await asyncio.to_thread(
            pki.issue, directory, args.address, passphrase, kind=args.kind, key_size=args.key_size
        )
        print(
            f"issued serial {issued.cert.serial_number:x} for {args.address}: "
            f"{paths.mailbox(args.address)[0]}"
        )
        return 0
    if args.action == "hsm-import":
        return await asyncio.to_thread(_hsm_import, settings, paths, args, passphrase)
    serial = await asyncio.to_thread(pki.revoke, directory, args.address, passphrase)
    print(f"revoked serial {serial:x} for {args.address}; CRL re-signed: {paths.crl}")
    return 0


def _hsm_import(
    settings: Settings, paths: pki.PkiPaths, args: argparse.Namespace, passphrase: bytes | None
) -> int:
    """The migration from key files to an HSM: the key becomes sensitive, not extractable."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from gateway.core.trust import open_token

    token = open_token(settings)
    if token is None:
        raise ConfigError("no HSM configured: set smime.pkcs11_module (and the token, PIN)")
    _, key_path = paths.mailbox(args.address)
    try:
        key = pki.load_private_key(key_path, passphrase)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidInput(f"{key_path}: only RSA keys go into the token")
        token.import_key(args.address.lower(), key)  # HsmError: the token's refusal, as it is
    finally:
        token.close()
    if not args.keep_file:
        key_path.unlink()
    print(
        f"key of {args.address} now in the HSM (token {settings.smime.pkcs11_token_label})"
        + ("" if args.keep_file else f"; {key_path} removed")
    )
    return 0


async def command(args: argparse.Namespace) -> int:
    return await run(args, settings_of(args))
