"""The ``pli`` command: parse, call a command group, print. No business logic lives here.

Command groups are imported lazily: the registry below holds each group's
module and one-line help, so ``pli --help`` (and any one command) imports only
what it runs, never the whole gateway. A group module exposes
``add_parser(parser, common)`` and an async ``command(args) -> exit code``.

Exit codes: 0 ok, 1 failure, 2 usage error. Errors are one line on stderr;
``--debug`` adds the traceback. Secrets are read from stdin or a prompt, never
from the command line (which other users can see in the process list).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NamedTuple

from gateway.cli.common import Command, common_options

__all__ = ["build_parser", "main"]


class _Group(NamedTuple):
    module: str
    help: str
    add: str = "add_parser"
    command: str = "command"


_GROUPS: dict[str, _Group] = {
    "init": _Group(
        "gateway.cli.init",
        "initialise a data directory (keys, TLS, schema)",
        "add_init_parser",
        "init_command",
    ),
    "serve": _Group(
        "gateway.cli.init",
        "run the SMTP, IMAP and HTTP listeners",
        "add_serve_parser",
        "serve_command",
    ),
    "directory": _Group("gateway.cli.directory", "the professional directory"),
    "policy": _Group("gateway.cli.policy", "the policy rule file"),
    "queue": _Group("gateway.cli.queue", "the outbound queue"),
    "mdn": _Group("gateway.cli.mdn", "disposition notifications received"),
    "user": _Group("gateway.cli.user", "mailbox users"),
    "audit": _Group("gateway.cli.audit", "the audit trail"),
    "vault": _Group("gateway.cli.vault", "the encrypted vault"),
    "xdm": _Group("gateway.cli.xdm", "IHE XDM packages (IHE_XDM.zip) and the INS"),
    "pki": _Group("gateway.cli.pki", "the development PKI (mimics IGC-Santé)"),
    "token": _Group("gateway.cli.token", "API tokens"),
    "mailbox": _Group("gateway.cli.mailbox", "mailbox accounts: inactivity and closure"),
    "acl": _Group("gateway.cli.acl", "rights of delegated users on shared mailboxes"),
    "config": _Group("gateway.cli.config", "the configuration reference"),
}
_TAKES_VALUE = frozenset({"--data-dir", "--config"})  # the common options with a value


def _command_in(argv: Sequence[str]) -> str | None:
    """The command group named on the command line, if any (options may come first)."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in _TAKES_VALUE:
            skip = True
        elif not token.startswith("-"):
            return token if token in _GROUPS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, complete for ``command`` (its module imported); the other groups are
    listed with their help line only."""
    parser = argparse.ArgumentParser(
        prog="pli", description="pli: secure health document exchange gateway"
    )
    common_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, group in _GROUPS.items():
        p = sub.add_parser(name, help=group.help)
        if name in ("init", "serve"):
            common_options(p)
        if name == command:
            add: Callable[
                [argparse.ArgumentParser, Callable[[argparse.ArgumentParser], None]], None
            ] = getattr(importlib.import_module(group.module), group.add)
            add(p, common_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command_in(argv)).parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    group = _GROUPS[args.command]
    try:
        run: Command = getattr(importlib.import_module(group.module), group.command)
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _report(exc, debug)


def _report(exc: Exception, debug: bool) -> int:
    """One line on stderr: the error's own text for a known kind, else only its class."""
    from directory.base import DirectoryError
    from gateway.base.errors import PliError, UsageError
    from vault.base import VaultError

    if debug:
        traceback.print_exc()
    if isinstance(exc, PliError | DirectoryError | VaultError | OSError):
        text = getattr(exc, "text", None) or str(exc) or type(exc).__name__
        print(f"pli: error: {text}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    # the last resort: one line, never a traceback by default
    print(
        f"pli: internal error: {type(exc).__name__} (run with --debug for details)", file=sys.stderr
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
