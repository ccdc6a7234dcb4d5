"""Sessions on the same mailbox state share one snapshot; any change gives a new one."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from gateway.mailstore.views import ViewCache

T = dt.datetime(2026, 11, 23)


def _rows(*specs: tuple[int, str, int]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(uid=u, flags=f, size=10, internal_date=T, modseq=m) for u, f, m in specs
    ]


def test_same_state_same_snapshot_changes_rebuild() -> None:
    cache = ViewCache(size=2)
    first = cache.messages(1, _rows((1, "", 5), (2, "\\Seen", 6)))
    assert cache.messages(1, _rows((1, "", 5), (2, "\\Seen", 6))) is first
    assert first[0].internal_date.tzinfo is dt.UTC
    flagged = cache.messages(1, _rows((1, "\\Seen", 7), (2, "\\Seen", 6)))  # STORE: modseq 7
    assert flagged is not first and flagged[0].flags == {"\\Seen"}
    assert flagged[0].flags is flagged[1].flags  # interned
    expunged = cache.messages(1, _rows((2, "\\Seen", 6)))  # fewer rows
    assert [m.uid for m in expunged] == [2]
    assert cache.messages(1, _rows()) == ()
    cache.messages(2, _rows((1, "", 1)))
    cache.messages(3, _rows((1, "", 1)))  # evicts mailbox 1 (size 2)
    again = cache.messages(1, _rows())
    assert again == () and 1 in cache._views
