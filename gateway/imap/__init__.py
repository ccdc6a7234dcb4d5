"""pli's own IMAP4rev1 front end (RFC 3501 + IDLE, UIDPLUS, MOVE, CONDSTORE, ACL...), which
only translates protocol to ImapBackend calls.

``parser`` (pure grammar) → ``session`` (state machine over the command groups
``commands_auth``/``commands_mailbox``/``commands_message``/``commands_acl``,
sharing ``session_base``) → ``gateway.core.ports.ImapBackend`` (the seam to the
mailstore, implemented by ``gateway.mailstore.store``);
``fetch``/``bodystructure``/``envelope``/``search``/``responses`` are pure
renderers and matchers, and ``server`` owns sockets, STARTTLS and implicit TLS,
limits and timeouts; start it with ``gateway.imap.server.start_imap``.
Nothing in this package touches SQL, the vault or crypto, and nothing here
logs credentials or message content. This module imports nothing so that
importing one of its modules stays light.
"""
