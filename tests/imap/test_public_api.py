"""Pins the IMAP package's (and its mailstore's) public names: changing them is a decision."""

from __future__ import annotations

import pytest

from tests.support.public_api import check_public_names

PUBLIC = {
    "gateway.core.ports": [
        "ALL_RIGHTS",
        "DELEGATED_RIGHTS",
        "INBOX",
        "SENT",
        "SHARED_PREFIX",
        "CopyResult",
        "ImapBackend",
        "MailboxDrop",
        "MailboxEntry",
        "MailboxView",
        "MailboxWriter",
        "MessageInfo",
        "Notifier",
        "OutboundQueue",
        "Principal",
        "StoreMode",
        "StoreResult",
    ],
    "gateway.imap.bodystructure": [
        "Part",
        "body_structure",
        "parse_mime",
        "section_bytes",
        "structure",
    ],
    "gateway.imap.commands_acl": ["AclCommands"],
    "gateway.imap.commands_auth": ["AuthCommands"],
    "gateway.imap.commands_mailbox": ["MailboxCommands", "list_pattern", "parse_date_time"],
    "gateway.imap.commands_message": ["MessageCommands"],
    "gateway.imap.envelope": ["envelope"],
    "gateway.imap.fetch": [
        "FetchItem",
        "format_flags",
        "internal_date",
        "parse_fetch_items",
        "render_fetch",
    ],
    "gateway.imap.parser": [
        "Command",
        "ParseError",
        "Token",
        "literal_announced",
        "parse_command",
        "parse_sequence_set",
    ],
    "gateway.imap.responses": ["clean_text", "error_reply", "expected", "quote", "tagged"],
    "gateway.imap.search": ["Key", "Target", "matches", "needs_content", "parse_search"],
    "gateway.imap.server": ["ImapLimits", "start_imap"],
    "gateway.imap.session": ["Outcome", "Session", "State"],
    "gateway.imap.session_base": [
        "SYSTEM_FLAGS",
        "Ask",
        "No",
        "Outcome",
        "ReadLine",
        "Send",
        "SessionBase",
        "State",
        "astring",
        "mailbox_name",
        "parse_flags",
        "uid_set",
    ],
    "gateway.mailstore.store": ["SPECIAL_USE", "MailStore", "ensure_mailbox"],
    "gateway.mailstore.append": [
        "Allocation",
        "allocate",
        "append_message",
        "copy_rows",
        "deliver",
        "ensure_mailbox",
    ],
    "gateway.mailstore.notify": ["MailboxNotifier"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module: str) -> None:
    check_public_names(module, PUBLIC[module])
