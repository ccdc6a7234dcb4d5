"""Failed logins counted per address and per client IP, in a sliding window.

Password guessing comes two ways: many passwords against one mailbox (an
address limit stops it, whatever IPs it comes from) and one password against
many mailboxes from one place (an IP limit). While a key is over its limit,
logins for it are refused before any password is checked (no argon2 work for
the attacker to spend), with a temporary reply. Per instance and bounded in
memory; a success clears the address's count.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

__all__ = ["LoginThrottle"]

_MAX_KEYS = 100_000


class _Window:
    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.hits: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def over(self, key: str, now: float) -> bool:
        times = self.hits.get(key)
        if not times:
            return False
        while times and times[0] <= now - self.window:
            times.popleft()
        return len(times) >= self.limit

    def add(self, key: str, now: float) -> None:
        times = self.hits.get(key)
        if times is None:
            times = self.hits[key] = collections.deque(maxlen=self.limit)
            if len(self.hits) > _MAX_KEYS:
                self.hits.popitem(last=False)
        else:
            self.hits.move_to_end(key)
        times.append(now)


class LoginThrottle:
    def __init__(
        self,
        *,
        per_address: int = 5,
        per_ip: int = 20,
        window: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._address = _Window(per_address, window)
        self._ip = _Window(per_ip, window)
        self._clock = clock

    def blocked(self, address: str, remote: str) -> bool:
        now = self._clock()
        return (bool(address) and self._address.over(address, now)) or (
            bool(remote) and self._ip.over(remote, now)
        )

    def failed(self, address: str, remote: str) -> None:
        now = self._clock()
        if address:
            self._address.add(address, now)
        if remote:
            self._ip.add(remote, now)

    def succeeded(self, address: str) -> None:
        self._address.hits.pop(address, None)
