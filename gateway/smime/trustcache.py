"""A small, bounded memory of recent certification paths and CRL signature checks.

Every message from the same correspondent makes the verifier build the same
path (webpki rules and a signature check per link) and check the same CRL
signature: about half a millisecond of CPU per message for an answer that only
changes when the certificates, the trust anchors, the CRL or the time do. This
module keeps those answers for a short while, and is built so that using it
never changes an outcome:

* a path is remembered only after it was built successfully, under the exact
  DER of the leaf, of every candidate intermediate (in order) and of every
  trust anchor, and is reused only while the validation time lies inside the
  validity period of each certificate on it and the entry is younger than
  ``ttl`` seconds; failures are never remembered, they are recomputed;
* revocation is never remembered: the caller looks every certificate of the
  path up in the CRLs it passes on every call, so a CRL that lists a
  certificate (``pli pki revoke``, re-read by ``TrustStore``) refuses it on
  the next message; only "this CRL (by the SHA-256 of its DER) was issued and
  signed by this certificate (by its DER)", a fact about fixed bytes, is kept;
* ``derived`` keeps what a pure function computes from one certificate's
  bytes (its mail addresses, its subject as text), under that DER;
* the keys themselves (a certificate's DER, a CRL's SHA-256) are remembered
  per object, for the immutable objects a caller passes again and again.

It holds certificates and CRL fingerprints only (public data, no content, no
keys), is bounded in entries, and is safe to share between worker threads.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["ChainCache"]

_PathKey = tuple[bytes, tuple[bytes, ...], tuple[bytes, ...]]
_T = TypeVar("_T")
_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class _Path:
    chain: tuple[x509.Certificate, ...]
    not_before: dt.datetime  # the latest notBefore on the path
    not_after: dt.datetime  # the earliest notAfter on the path
    stored: float  # the cache clock when built


class ChainCache:
    """Recently built certification paths and checked CRL signatures (see the module)."""

    def __init__(
        self,
        max_entries: int = 256,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl < 0:
            raise ValueError("max_entries must be >= 1 and ttl >= 0")
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._paths: OrderedDict[_PathKey, _Path] = OrderedDict()
        self._crl_sigs: OrderedDict[tuple[bytes, bytes], bool] = OrderedDict()
        self._derived: OrderedDict[tuple[str, bytes], object] = OrderedDict()
        # The DER of a certificate, the SHA-256 of a CRL, by object identity: anchors,
        # intermediates and CRLs are the same objects message after message. An entry holds
        # its object, so no other object can take that id while the entry exists.
        self._encoded: OrderedDict[int, tuple[object, bytes]] = OrderedDict()

    def _encoding(self, obj: object, encode: Callable[[], bytes]) -> bytes:
        with self._lock:
            hit = self._encoded.get(id(obj))
            if hit is not None and hit[0] is obj:
                self._encoded.move_to_end(id(obj))
                return hit[1]
        value = encode()
        with self._lock:
            self._encoded[id(obj)] = (obj, value)
            self._encoded.move_to_end(id(obj))
            self._bound(self._encoded)
        return value

    def _der(self, cert: x509.Certificate) -> bytes:
        return self._encoding(cert, lambda: cert.public_bytes(Encoding.DER))

    def _bound(self, table: OrderedDict[_K, _V]) -> None:
        while len(table) > self.max_entries:
            table.popitem(last=False)

    def chain(
        self,
        leaf: x509.Certificate,
        pool: Sequence[x509.Certificate],
        roots: Sequence[x509.Certificate],
        at_time: dt.datetime,
        build: Callable[[], list[x509.Certificate]],
    ) -> list[x509.Certificate]:
        """``build()``'s path for (leaf, pool, roots) at ``at_time``, or a remembered one
        that is still valid then. ``build`` raising is passed through and not remembered."""
        key: _PathKey = (
            self._der(leaf),
            tuple(self._der(c) for c in pool),
            tuple(self._der(c) for c in roots),
        )
        now = self._clock()
        with self._lock:
            hit = self._paths.get(key)
            if (
                hit is not None
                and now - hit.stored < self.ttl
                and hit.not_before <= at_time <= hit.not_after
            ):
                self._paths.move_to_end(key)
                return list(hit.chain)
        chain = build()
        entry = _Path(
            tuple(chain),
            max(c.not_valid_before_utc for c in chain),
            min(c.not_valid_after_utc for c in chain),
            now,
        )
        with self._lock:
            self._paths[key] = entry
            self._paths.move_to_end(key)
            self._bound(self._paths)
        return chain

    def crl_issued_by(self, crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        """Whether ``crl`` names ``issuer``'s subject as its issuer and ``issuer``'s key
        signed it; both are fixed bytes, so the answer is kept without expiry."""
        key = (self._encoding(crl, lambda: crl.fingerprint(hashes.SHA256())), self._der(issuer))
        with self._lock:
            known = self._crl_sigs.get(key)
            if known is not None:
                self._crl_sigs.move_to_end(key)
                return known
        valid = crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        with self._lock:
            self._crl_sigs[key] = valid
            self._bound(self._crl_sigs)
        return valid

    def derived(
        self, cert: x509.Certificate, what: str, compute: Callable[[x509.Certificate], _T]
    ) -> _T:
        """``compute(cert)``, kept under (``what``, the certificate's DER): ``compute`` must
        depend on the certificate's bytes alone."""
        key = (what, self._der(cert))
        with self._lock:
            if key in self._derived:
                self._derived.move_to_end(key)
                return self._derived[key]  # type: ignore[return-value]
        value = compute(cert)
        with self._lock:
            self._derived[key] = value
            self._bound(self._derived)
        return value
