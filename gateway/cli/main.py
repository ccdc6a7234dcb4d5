"""The ``pli`` command: parse, call a service, print. No business logic lives here.

Exit codes: 0 ok, 1 failure, 2 usage error. Errors are one line on stderr;
``--debug`` adds the traceback. Secrets are read from stdin or a prompt, never
from the command line (which other users can see in the process list).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import DirectoryError, normalize_address
from gateway.base.config import Settings, load_settings
from gateway.base.errors import PliError
from gateway.cli import acl as cli_acl
from gateway.cli import audit as cli_audit
from gateway.cli import config as cli_config
from gateway.cli import directory as cli_directory
from gateway.cli import mailbox as cli_mailbox
from gateway.cli import pki as cli_pki
from gateway.cli import policy as cli_policy
from gateway.cli import queue as cli_queue
from gateway.cli import token as cli_token
from gateway.cli import vault as cli_vault
from gateway.cli import xdm as cli_xdm
from vault.base import VaultError

__all__ = ["build_parser", "main"]


def _common(p: argparse.ArgumentParser) -> None:
    # SUPPRESS lets the options stand before or after the sub-command.
    p.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS,
                   help="data directory (env PLI_DATA_DIR, default ./var)")
    p.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                   help="configuration file (env PLI_CONFIG, default DATA_DIR/pli.toml)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="print tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pli", description="pli: secure health document exchange gateway")
    _common(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="initialise a data directory (keys, TLS, schema)")
    _common(p)
    p.add_argument("--demo", action="store_true", help="load the demo directory and accounts")
    p.add_argument("--domain", action="append", default=[], help="a served mail domain")

    p = sub.add_parser("serve", help="run the SMTP, IMAP and HTTP listeners")
    _common(p)

    cli_directory.add_parser(sub, _common)
    cli_policy.add_parser(sub, _common)
    cli_queue.add_parser(sub, _common)
    m = sub.add_parser("mdn", help="disposition notifications received").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = m.add_parser("list", help="acknowledgements received, by original Message-ID")
    _common(p)
    p.add_argument("--message-id", help="only those answering this Message-ID")
    p.add_argument("--format", choices=["table", "json"], default="table")

    u = sub.add_parser("user", help="mailbox users").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = u.add_parser("passwd", help="set a user's password")
    _common(p)
    p.add_argument("address")
    p.add_argument("--stdin", action="store_true", help="read the password from stdin")

    cli_audit.add_parser(sub, _common)
    cli_vault.add_parser(sub, _common)
    cli_xdm.add_parser(sub, _common)
    cli_pki.add_parser(sub, _common)
    cli_token.add_parser(sub, _common)
    cli_mailbox.add_parser(sub, _common)
    cli_acl.add_parser(sub, _common)
    cli_config.add_parser(sub, _common)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))


async def _cmd_init(args: argparse.Namespace) -> int:
    from gateway.app.datadir import init_data_dir

    data_dir = getattr(args, "data_dir", None) or _settings(args).data_dir
    settings, accounts = await init_data_dir(
        data_dir, demo=args.demo, domains=tuple(args.domain),
        config_file=getattr(args, "config", None))
    print(f"data directory ready: {settings.data_dir.resolve()}")
    if accounts:
        _print_demo(settings, accounts)
    return 0


def _print_demo(settings: Settings, accounts: Sequence[Any]) -> None:
    print("\nDemo accounts (address / password), also in DATA_DIR/demo-accounts.txt:")
    for acc in accounts:
        print(f"  {acc.address:58} {acc.password}")
    print(
        f"\nMail client: IMAP {settings.imap.host}:{settings.imap.port} STARTTLS, "
        f"user = the address; incoming SMTP {settings.smtp.host}:{settings.smtp.mta_port} "
        "STARTTLS.\nThe TLS certificate is self-signed for development: accept it once.\n"
        f"Try: swaks --server {settings.smtp.host}:{settings.smtp.mta_port} -tls "
        "--from jean.petit@medecin.mssante.fr --to sophie.bernard@ch-arras.mssante.fr"
    )


async def _cmd_serve(args: argparse.Namespace) -> int:
    from gateway.app.datadir import read_demo_accounts
    from gateway.app.server import run_server
    from gateway.base.events import configure_logging

    settings = _settings(args)  # no thread before run_server tunes the allocator
    configure_logging(settings.log.level)
    accounts = read_demo_accounts(settings.data_dir)
    if accounts and sys.stdout.isatty():
        _print_demo(settings, accounts)
    await run_server(settings)
    return 0


async def _open(args: argparse.Namespace) -> tuple[Settings, Any]:
    from gateway.base.db import create_engine
    from gateway.migrations import migrate

    settings = _settings(args)
    engine = create_engine(settings.database_url(), one_trip=settings.tuning.sqlite_one_trip)
    await migrate(engine)
    return settings, engine


async def _cmd_policy(args: argparse.Namespace) -> int:
    if args.action == "check":
        return cli_policy.check(args.file)
    settings, engine = await _open(args)
    try:
        return await cli_policy.explain(args, settings, engine)
    finally:
        await engine.dispose()


async def _cmd_queue(args: argparse.Namespace) -> int:
    _, engine = await _open(args)
    try:
        return await cli_queue.run(args, engine)
    finally:
        await engine.dispose()


async def _cmd_mdn(args: argparse.Namespace) -> int:
    from gateway.core import records

    _, engine = await _open(args)
    try:
        wanted = None
        if args.message_id:
            wanted = args.message_id.strip()
            if not wanted.startswith("<"):
                wanted = f"<{wanted}>"
        for r in await records.acks(engine, wanted):
            if args.format == "json":
                print(json.dumps({"original_message_id": r.original_message_id,
                                  "final_recipient": r.final_recipient,
                                  "disposition": r.disposition, "reporter": r.reporter,
                                  "received_at": r.received_at.isoformat()}))
            else:
                print(f"{r.received_at:%Y-%m-%d %H:%M:%S}  {r.disposition:16} "
                      f"{r.final_recipient:40} {r.original_message_id}")
        return 0
    finally:
        await engine.dispose()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise PliError("the two passwords differ")
    return first


async def _cmd_user(args: argparse.Namespace) -> int:
    from contextlib import AsyncExitStack

    from gateway.app.backends import open_directory
    from gateway.mailstore.accounts import Accounts

    address = normalize_address(args.address)
    settings, engine = await _open(args)
    try:
        async with AsyncExitStack() as stack:
            entry = await open_directory(settings, engine, stack).resolve(address)
        if entry is None:
            raise PliError(f"{address} is not in the directory; import it first")
        await Accounts(engine).set_password(address, _read_password(args.stdin))
        print(f"password set for {address}")
        return 0
    finally:
        await engine.dispose()


async def _cmd_pki(args: argparse.Namespace) -> int:
    return await cli_pki.run(args, _settings(args))


async def _cmd_xdm(args: argparse.Namespace) -> int:
    return cli_xdm.run(args, None)  # pure file work: no configuration, no database


Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
Runner = Callable[[argparse.Namespace, Settings, AsyncEngine], Coroutine[Any, Any, int]]


def _with_database(run: Runner) -> Command:
    """A command that needs the settings and a migrated database, disposed of after."""
    async def command(args: argparse.Namespace) -> int:
        settings, engine = await _open(args)
        try:
            return await run(args, settings, engine)
        finally:
            await engine.dispose()

    return command


_COMMANDS: dict[str, Command] = {
    "init": _cmd_init, "serve": _cmd_serve, "policy": _cmd_policy, "queue": _cmd_queue,
    "mdn": _cmd_mdn, "user": _cmd_user, "xdm": _cmd_xdm, "pki": _cmd_pki,
    "directory": _with_database(cli_directory.run), "vault": _with_database(cli_vault.run),
    "audit": _with_database(cli_audit.run), "token": _with_database(cli_token.run),
    "mailbox": _with_database(cli_mailbox.run), "acl": _with_database(cli_acl.run),
    "config": cli_config.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        return asyncio.run(_COMMANDS[args.command](args))
    except KeyboardInterrupt:
        return 130
    except (PliError, DirectoryError, VaultError, OSError) as exc:
        if debug:
            traceback.print_exc()
        text = getattr(exc, "text", None) or str(exc) or type(exc).__name__
        print(f"pli: error: {text}", file=sys.stderr)
        return 1
    except Exception as exc:  # the last resort: one line, never a traceback by default
        if debug:
            traceback.print_exc()
        print(f"pli: internal error: {type(exc).__name__} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
