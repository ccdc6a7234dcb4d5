"""``pli policy check FILE`` and ``pli policy explain --from A --to B``.

``explain`` runs the very evaluation SMTP runs (same rule file, same
directory backend), without counting toward rate limits, and prints each
step's verdict, exact reply and deciding rule.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.base.config import Settings
from gateway.base.errors import ConfigError, InvalidInput
from gateway.cli.common import open_database
from gateway.smtp import replies
from policies.model import Decision
from policies.rules import RuleError, load_rules

__all__ = ["add_parser", "check", "command", "explain"]


def add_parser(
    parser: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]
) -> None:
    p_ = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = p_.add_parser("check", help="validate a rule file")
    common(p)
    p.add_argument("file", type=Path)
    p = p_.add_parser("explain", help="show which rule decides for an envelope")
    common(p)
    p.add_argument(
        "--from",
        dest="sender",
        required=True,
        metavar="ADDRESS",
        help="envelope sender ('' for the null sender of DSNs)",
    )
    p.add_argument(
        "--to",
        dest="recipients",
        action="append",
        required=True,
        metavar="ADDRESS",
        help="a recipient (repeatable)",
    )
    p.add_argument("--size", type=int, default=0, help="message size in bytes")
    p.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        metavar="MIME",
        help="a MIME type of a part (repeatable)",
    )
    p.add_argument(
        "--rules", type=Path, default=None, help="rule file to try (default: the configured one)"
    )


def check(path: Path) -> int:
    try:
        rules = load_rules(path)
    except RuleError as exc:  # the file named on the command line is the input
        raise InvalidInput(str(exc)) from None
    print(
        f"{path}: OK ({len(rules.rules)} explicit rules; max message size "
        f"{rules.limits.max_message_size} bytes; {len(rules.attachments.allowed_types)} "
        f"allowed types; encryption {rules.encryption.default.value} by default)"
    )
    return 0


def _line(step: str, d: Decision) -> str:
    return f"{step}\n  {d.verdict.value:7} {replies.for_decision(d)}   (rule {d.rule_id})"


async def explain(args: argparse.Namespace, settings: Settings, engine: AsyncEngine) -> int:
    from gateway.app.backends import open_directory
    from policies.engine import PolicyEngine

    try:
        rules = load_rules(args.rules or settings.policy_path())
    except RuleError as exc:
        if args.rules:  # the file to try is the operator's input
            raise InvalidInput(str(exc)) from None
        raise ConfigError(str(exc)) from None  # the configured file, as at start-up
    async with AsyncExitStack() as stack:
        policy = PolicyEngine(open_directory(settings, engine, stack), settings.domains, rules)
        sender = await policy.check_sender(args.sender, count=False)
        print(_line(f"MAIL FROM:<{args.sender}>", sender))
        accepted = 0
        for rcpt in args.recipients:
            decision = await policy.check_recipient(
                rcpt, sender=args.sender or None, accepted_so_far=accepted
            )
            accepted += decision.accepted
            print(_line(f"RCPT TO:<{rcpt}>", decision))
            if decision.accepted:
                print(f"  encryption {policy.encryption_mode(rcpt).value}")
        if args.size or args.types:
            print(_line("DATA", policy.check_message(args.size, args.types)))
    return 0


async def command(args: argparse.Namespace) -> int:
    if args.action == "check":
        return check(args.file)
    settings, engine = await open_database(args)
    try:
        return await explain(args, settings, engine)
    finally:
        await engine.dispose()
