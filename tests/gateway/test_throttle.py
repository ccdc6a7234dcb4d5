"""Failed-login throttling: per address, per client IP, sliding window, cleared by success."""

from __future__ import annotations

from gateway.mailstore.throttle import LoginThrottle
from tests.support.clock import FakeClock


def test_address_limit_window_and_success() -> None:
    clock = FakeClock()
    t = LoginThrottle(per_address=3, per_ip=100, window=60, clock=clock)
    for _ in range(3):
        assert not t.blocked("a@x.fr", "10.0.0.1")
        t.failed("a@x.fr", "10.0.0.1")
    assert t.blocked("a@x.fr", "10.0.0.2")  # the address, from anywhere
    assert not t.blocked("b@x.fr", "10.0.0.1")
    clock.now += 61
    assert not t.blocked("a@x.fr", "10.0.0.1")  # the window slid past the failures
    t.failed("a@x.fr", "10.0.0.1")
    t.succeeded("a@x.fr")
    t.failed("a@x.fr", "10.0.0.1")
    t.failed("a@x.fr", "10.0.0.1")
    assert not t.blocked("a@x.fr", "10.0.0.1")  # the success wiped the earlier failure


def test_ip_limit_spraying_many_addresses() -> None:
    t = LoginThrottle(per_address=5, per_ip=4, window=60, clock=FakeClock())
    for i in range(4):
        t.failed(f"user{i}@x.fr", "198.51.100.9")
    assert t.blocked("someone.else@x.fr", "198.51.100.9")
    assert not t.blocked("someone.else@x.fr", "198.51.100.10")
