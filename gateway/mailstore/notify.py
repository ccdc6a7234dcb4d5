"""In-process change notifications for mailbox owners: what wakes an IDLE session (RFC 2177).

The commit path and the mailstore call :meth:`MailboxNotifier.notify` after
their transaction has committed; IMAP sessions that selected a mailbox of that
owner hold an :class:`asyncio.Event` and re-read their mailbox when it is set.
One instance per process, built by the composition root; it carries no
message data (only owner addresses) and never blocks a committer. Across
instances, sessions also poll (the IMAP session's IDLE interval).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

__all__ = ["MailboxNotifier"]


class MailboxNotifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def subscribe(self, owner: str) -> asyncio.Event:
        """An event set whenever ``owner``'s mail changes; unsubscribe when done."""
        event = asyncio.Event()
        self._waiters.setdefault(owner.lower(), set()).add(event)
        return event

    def unsubscribe(self, owner: str, event: asyncio.Event) -> None:
        key = owner.lower()
        waiting = self._waiters.get(key)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self._waiters[key]

    def notify(self, owners: Iterable[str]) -> None:
        """Wake every session watching one of ``owners`` (cheap: sets events)."""
        for owner in set(o.lower() for o in owners):
            for event in self._waiters.get(owner, ()):
                event.set()

    def watchers(self) -> int:
        """How many sessions are waiting (for metrics and tests)."""
        return sum(len(w) for w in self._waiters.values())
