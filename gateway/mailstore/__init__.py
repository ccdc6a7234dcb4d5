"""Mailboxes as users see them: accounts and credentials, mailboxes, messages, flags,
ACLs, login throttles, closure and expiry, and their tables."""
