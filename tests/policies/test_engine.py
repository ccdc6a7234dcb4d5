"""Policy decisions over the real SQL directory: each step's verdict, reply and rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from directory.sql import SqlDirectory
from directory.sql_import import import_extraction, import_trustlist
from policies.engine import PolicyEngine
from policies.rules import parse_rules
from tests.support.clock import FakeClock

FIX = Path(__file__).parent.parent / "fixtures" / "directory"
SERVED = ["ch-arras.mssante.fr", "ehpad-les-tilleuls.mssante.fr", "medecin.mssante.fr"]
NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
SOPHIE = "sophie.bernard@ch-arras.mssante.fr"


@pytest.fixture
async def directory(engine: AsyncEngine) -> SqlDirectory:
    await import_extraction(engine, FIX / "extraction-sample.txt")
    await import_trustlist(engine, FIX / "liste-blanche-sample.xml")
    return SqlDirectory(engine)


def _sig(d: object) -> tuple[int, str, str]:
    return d.smtp_code, d.enhanced_code, d.rule_id  # type: ignore[attr-defined]


async def test_default_decisions(directory: SqlDirectory) -> None:
    p = PolicyEngine(directory, SERVED)
    assert _sig(await p.check_sender(NURSE)) == (250, "2.1.0", "senders.listed")
    assert _sig(await p.check_sender("ghost@ch-arras.mssante.fr")) == (
        550,
        "5.7.1",
        "senders.listed",
    )
    assert _sig(await p.check_sender("x@gmail.com")) == (550, "5.7.1", "senders.trust_space")
    # Another operator's domain on the liste blanche: its senders are not ours to list.
    assert _sig(await p.check_sender("someone@pharmacien.mssante.fr")) == (
        250,
        "2.1.0",
        "senders.trust_space",
    )
    assert _sig(await p.check_sender("")) == (250, "2.1.0", "null-sender")
    assert _sig(await p.check_sender("bad@@x")) == (553, "5.1.7", "address-syntax")
    assert _sig(await p.check_recipient(SOPHIE)) == (250, "2.1.5", "recipients.listed")
    assert _sig(await p.check_recipient("nobody@ch-arras.mssante.fr")) == (
        550,
        "5.1.1",
        "recipients.listed",
    )
    assert _sig(await p.check_recipient("x@gmail.com")) == (550, "5.7.1", "relay")
    assert _sig(await p.check_recipient(SOPHIE, accepted_so_far=100)) == (
        452,
        "4.5.3",
        "limits.max_recipients",
    )
    assert _sig(p.check_message(60 * 2**20, [])) == (552, "5.3.4", "limits.max_message_size")
    assert _sig(p.check_message(100, ["multipart/mixed", "text/plain", "application/pdf"])) == (
        250,
        "2.6.0",
        "attachments.allowed_types",
    )
    refused = p.check_message(100, ["multipart/mixed", "application/x-msdownload"])
    assert _sig(refused) == (554, "5.6.1", "attachments.allowed_types")
    assert "application/x-msdownload" in refused.text
    assert _sig(p.check_message(100, ["text/plain"] * 201)) == (
        554,
        "5.6.0",
        "attachments.max_parts",
    )


async def test_explicit_rules_never_open_relaying(directory: SqlDirectory) -> None:
    rules = parse_rules("""
[[rule]]
id = "allow-all"
to = "*"
action = "accept"

[[rule]]
id = "blocked-lab"
from = "*@labo.example.fr"
action = "reject"
code = 554
enhanced = "5.7.1"
text = "This laboratory is blocked"
""")
    p = PolicyEngine(directory, SERVED, rules)
    assert _sig(await p.check_recipient("x@gmail.com")) == (550, "5.7.1", "relay")
    # ... but inside served domains the explicit accept wins over the directory check.
    assert _sig(await p.check_recipient("nobody@ch-arras.mssante.fr")) == (
        250,
        "2.1.0",
        "rule.allow-all",
    )
    blocked = await p.check_sender("bio@labo.example.fr")
    assert _sig(blocked) == (554, "5.7.1", "rule.blocked-lab")
    assert (blocked.smtp_code, blocked.enhanced_code, blocked.text) == (
        554,
        "5.7.1",
        "This laboratory is blocked",
    )


async def test_rate_limit_per_sender(directory: SqlDirectory) -> None:
    clock = FakeClock()
    rules = parse_rules("[limits]\nmessages_per_sender = 3\nrate_window = 60\n")
    p = PolicyEngine(directory, SERVED, rules, clock=clock)
    for _ in range(3):
        assert (await p.check_sender(NURSE)).accepted
    assert _sig(await p.check_sender(NURSE)) == (450, "4.7.1", "limits.messages_per_sender")
    assert (await p.check_sender(NURSE, count=False)).accepted  # explain does not count
    assert (await p.check_sender(SOPHIE)).accepted  # per sender
    clock.now += 61
    assert (await p.check_sender(NURSE)).accepted


async def test_reload_keeps_the_old_rules_when_the_new_file_is_bad(
    directory: SqlDirectory, tmp_path: Path
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[recipients]\nlisted = true\n")
    p = PolicyEngine(directory, SERVED, rules_file=path)
    assert not (await p.check_recipient("nobody@ch-arras.mssante.fr")).accepted
    path.write_text("[recipients]\nlisted = false\n")
    assert p.reload()
    assert (await p.check_recipient("nobody@ch-arras.mssante.fr")).accepted
    path.write_text("[recipients]\nlisted = 'maybe'\n")
    assert not p.reload()
    assert (await p.check_recipient("nobody@ch-arras.mssante.fr")).accepted
