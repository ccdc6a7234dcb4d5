"""A settable monotonic clock for code that takes ``clock=`` (caches, throttles, TTLs)."""

from __future__ import annotations


class FakeClock:
    """Returns ``now`` when called; tests move time by assigning or adding to it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
