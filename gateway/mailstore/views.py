"""Mailbox snapshots shared by every IMAP session that has the same mailbox open.

Each SELECT used to build its own list of per-message objects: 500 clients
idling on a 1,000-message INBOX held 500 copies (~400 KB each). A snapshot is
immutable, so sessions that see the same mailbox state can share one. The
state is identified from the rows themselves — their count and highest
MODSEQ, since MODSEQ only grows and every change (arrival, flag, expunge)
moves one or the other — so no read can pair a key with the wrong rows.
Flag sets are interned: a mailbox has few distinct combinations.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from gateway.base.db import utc as _utc
from gateway.core.ports import MessageInfo

__all__ = ["ViewCache"]


class ViewCache:
    """The latest snapshot of up to ``size`` mailboxes, keyed by mailbox id."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._views: OrderedDict[int, tuple[tuple[int, int], tuple[MessageInfo, ...]]] = (
            OrderedDict()
        )
        self._flags: dict[str, frozenset[str]] = {}

    def flags(self, text: str) -> frozenset[str]:
        found = self._flags.get(text)
        if found is None:
            found = frozenset(text.split())
            if len(self._flags) < 4096:  # keywords are free text: bound the table
                self._flags[text] = found
        return found

    def messages(self, box_id: int, rows: Sequence[Any]) -> tuple[MessageInfo, ...]:
        """The snapshot for these rows (uid, flags, size, internal_date, modseq; by UID)."""
        key = (len(rows), max((int(r.modseq) for r in rows), default=0))
        cached = self._views.get(box_id)
        if cached is not None and cached[0] == key:
            self._views.move_to_end(box_id)
            return cached[1]
        infos = tuple(
            MessageInfo(
                uid=int(r.uid),
                flags=self.flags(r.flags),
                size=int(r.size),
                internal_date=_utc(r.internal_date),
                modseq=int(r.modseq),
            )
            for r in rows
        )
        self._views[box_id] = (key, infos)
        self._views.move_to_end(box_id)
        while len(self._views) > self._size:
            self._views.popitem(last=False)
        return infos
