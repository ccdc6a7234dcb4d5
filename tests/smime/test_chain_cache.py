"""The path/CRL-signature cache never changes an outcome: revocation is seen on the next
message, other trust anchors or times are judged afresh, failures are not remembered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from gateway.smime import certpath, pki
from gateway.smime.signing import sign
from gateway.smime.trustcache import ChainCache
from gateway.smime.verification import Reason, verify
from tests.smime.conftest import PASSPHRASE, DevPki
from tests.support.clock import FakeClock

MESSAGE = b"Content-Type: text/plain\r\n\r\nbonjour\r\n"


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[x509.Certificate]:
    """Every leaf the verifier builds a path for (not served from a cache)."""
    seen: list[x509.Certificate] = []
    real = certpath._chain

    def counting(leaf: x509.Certificate, *args: object) -> list[x509.Certificate]:
        seen.append(leaf)
        return real(leaf, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(certpath, "_chain", counting)
    return seen


def test_a_revoked_certificate_is_refused_once_the_crl_says_so(
    dev_pki: DevPki, builds: list[x509.Certificate]
) -> None:
    address = "cache.revoked@hopital.example.fr"
    ident = pki.issue(dev_pki.paths.directory, address, PASSPHRASE, key_size=2048)
    signed = sign(MESSAGE, ident.cert, ident.key, ident.chain)
    cache = ChainCache()
    for _ in range(3):
        result = verify(signed, [dev_pki.root], crls=[dev_pki.crl()], chain_cache=cache)
        assert result.ok and result.revocation == "crl"
    assert builds == [ident.cert]  # built once, then remembered
    pki.revoke(dev_pki.paths.directory, address, PASSPHRASE)
    result = verify(signed, [dev_pki.root], crls=[dev_pki.crl()], chain_cache=cache)
    assert not result.ok and result.reason is Reason.REVOKED
    assert builds == [ident.cert]  # the path was still valid: only the CRL said no


def test_other_trust_anchors_are_judged_afresh(dev_pki: DevPki, tmp_path: Path) -> None:
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    cache = ChainCache()
    assert verify(signed, [dev_pki.root], chain_cache=cache).ok
    other = pki.init_pki(tmp_path / "other", [], [], None, key_size=2048)
    result = verify(signed, [pki.load_certificate(other.root_cert)], chain_cache=cache)
    assert not result.ok and result.reason is Reason.UNTRUSTED
    # without the intermediate in the message the remembered path does not apply either
    bare = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, ())
    result = verify(bare, [dev_pki.root], chain_cache=cache)
    assert not result.ok and result.reason is Reason.UNTRUSTED


def test_failures_are_not_remembered(dev_pki: DevPki, builds: list[x509.Certificate]) -> None:
    bare = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, ())
    cache = ChainCache()
    for _ in range(2):
        assert verify(bare, [dev_pki.root], chain_cache=cache).reason is Reason.UNTRUSTED
    assert len(builds) == 2
    assert verify(bare, [dev_pki.root], [dev_pki.intermediate], chain_cache=cache).ok


def test_expiry_of_entries_and_validity_window(
    dev_pki: DevPki, builds: list[x509.Certificate]
) -> None:
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    clock = FakeClock(1000.0)
    cache = ChainCache(ttl=60, clock=clock)
    assert verify(signed, [dev_pki.root], chain_cache=cache).ok
    clock.now += 59
    assert verify(signed, [dev_pki.root], chain_cache=cache).ok
    assert len(builds) == 1
    clock.now += 2  # older than the ttl: built again
    assert verify(signed, [dev_pki.root], chain_cache=cache).ok
    assert len(builds) == 2
    # a time outside the path's validity is never answered from the cache
    later = dev_pki.org.cert.not_valid_after_utc + dt.timedelta(days=1)
    assert verify(signed, [dev_pki.root], at_time=later, chain_cache=cache).reason is Reason.EXPIRED
    leaf, pool, roots = dev_pki.org.cert, [dev_pki.intermediate], [dev_pki.root]
    hit = cache.chain(leaf, pool, roots, dt.datetime.now(dt.UTC), lambda: pytest.fail("hit"))
    assert hit[0] == leaf
    rebuilt: list[dt.datetime] = []

    def build() -> list[x509.Certificate]:
        rebuilt.append(before)
        return [leaf, *pool, *roots]

    before = dev_pki.root.not_valid_before_utc - dt.timedelta(days=1)
    cache.chain(leaf, pool, roots, before, build)
    assert rebuilt == [before]


def test_no_cache_at_all(dev_pki: DevPki, builds: list[x509.Certificate]) -> None:
    signed = sign(MESSAGE, dev_pki.org.cert, dev_pki.org.key, dev_pki.org.chain)
    for _ in range(2):
        assert verify(signed, [dev_pki.root], crls=[dev_pki.crl()], chain_cache=None).ok
    assert len(builds) == 2


def test_crl_signatures_are_keyed_by_content(dev_pki: DevPki, tmp_path: Path) -> None:
    cache = ChainCache()
    crl = dev_pki.crl()
    assert cache.crl_issued_by(crl, dev_pki.intermediate)
    assert not cache.crl_issued_by(crl, dev_pki.root)  # another issuer: no
    other = pki.init_pki(tmp_path / "other", [], [], None, key_size=2048)
    foreign = pki.load_crl(other.crl)
    assert not cache.crl_issued_by(foreign, dev_pki.intermediate)
    assert cache.crl_issued_by(foreign, pki.load_certificate(other.intermediate_cert))


def test_the_cache_is_bounded(dev_pki: DevPki) -> None:
    cache = ChainCache(max_entries=2)
    now = dt.datetime.now(dt.UTC)
    certs = [dev_pki.org.cert, dev_pki.app.cert, dev_pki.intermediate]
    for c in certs:
        cache.chain(c, [], [dev_pki.root], now, lambda: [dev_pki.root])
    rebuilt: list[int] = []

    def build() -> list[x509.Certificate]:
        rebuilt.append(1)
        return [dev_pki.root]

    cache.chain(certs[0], [], [dev_pki.root], now, build)
    assert rebuilt == [1]  # the oldest entry was dropped
    assert len(cache._paths) == 2
    with pytest.raises(ValueError):
        ChainCache(max_entries=0)
