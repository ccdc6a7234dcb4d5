"""The rule file: the shipped defaults, validation errors that name the key, explicit rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.rules import (
    DEFAULT_RULES_FILE,
    EncryptionMode,
    RuleError,
    RuleSet,
    load_rules,
    parse_rules,
)


def test_shipped_file_is_the_builtin_defaults() -> None:
    assert load_rules(DEFAULT_RULES_FILE) == RuleSet() == load_rules(None)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("version = 2", "version"),
        ("[limits]\nmax_message_size = -1", "limits.max_message_size"),
        ("[limits]\nmax_mesage_size = 10", "limits.max_mesage_size"),  # a typo is not ignored
        ("[attachments]\nallowed_types = ['pdf']", "attachments.allowed_types"),
        ("[encryption]\ndefault = 'always'", "encryption.default"),
        ("[encryption.domains]\n'a.fr' = 'maybe'", "encryption.domains.a.fr"),
        ("[[rule]]\nid = 'x'\nfrom = '*@a.fr'\naction = 'bounce'", "rule[1].action"),
        ("[[rule]]\nid = 'x'\naction = 'reject'", "needs 'from' or 'to'"),
        (
            "[[rule]]\nid = 'x'\nto = '*'\naction = 'reject'\n[[rule]]\nid = 'x'\nto = '*'\n"
            "action = 'accept'",
            "duplicate rule id",
        ),
        ("[[rule]]\nid = 'x'\nto = '*'\naction = 'reject'\ncode = 250", "does not match"),
        (
            "[[rule]]\nid = 'x'\nto = '*'\naction = 'reject'\ntext = \"a\\r\\nRCPT TO:<x>\"",
            "one line",
        ),
        ("[limits\n", "invalid TOML"),
    ],
)
def test_invalid_files_name_the_key(text: str, named: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rules(text, "rules.toml")
    assert str(info.value).startswith("rules.toml: ") and named in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read"):
        load_rules(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"# \xe9\n")
    with pytest.raises(RuleError, match="cannot read"):
        load_rules(bad)


def test_explicit_rules_and_encryption_modes() -> None:
    rules = parse_rules("""
[encryption]
default = "none"
domains = { "ch-arras.mssante.fr" = "force" }
mailboxes = { "dpi@ch-arras.mssante.fr" = "opportunistic" }

[[rule]]
id = "lab"
from = "*@LABO.mssante.fr"
to = "dpi@*"
action = "defer"
""")
    rule = rules.rules[0]
    assert rule.matches("x@labo.mssante.fr", "DPI@ch-arras.mssante.fr")
    assert not rule.matches("x@labo.mssante.fr", "sophie@ch-arras.mssante.fr")
    assert not rule.matches(None, "dpi@ch-arras.mssante.fr")  # a sender pattern needs one
    assert rule.reply_code() == (451, "4.7.1")
    enc = rules.encryption
    assert enc.mode_for("x@ch-arras.mssante.fr") is EncryptionMode.FORCE
    assert enc.mode_for("DPI@ch-arras.mssante.fr") is EncryptionMode.OPPORTUNISTIC
    assert enc.mode_for("x@medecin.mssante.fr") is EncryptionMode.NONE
