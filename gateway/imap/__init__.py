"""pli's own IMAP4rev1 front end (RFC 3501), which only translates protocol to ImapBackend calls.

``parser`` (pure grammar) → ``session`` (state machine) → ``backend`` (the
seam to the mailstore); ``fetch``/``envelope``/``responses`` render replies and
``server`` owns sockets, STARTTLS, limits and timeouts; start it with
``gateway.imap.server.start``. Nothing in this package touches SQL, the vault
or crypto, and nothing here logs credentials or message content. This module
imports nothing so that importing ``gateway.imap.backend`` stays light.
"""
