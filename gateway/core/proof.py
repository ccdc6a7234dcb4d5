"""What a message's evidence proves: which receipt covers which bytes, whether each
still verifies against the PKI, and what the whole says.

``gateway/core/secure.py`` notarises the main object, the original S/MIME form
(when kept) and each attachment, by :func:`gateway.core.evidence.attachment_parts`.
Twenty years later :func:`check` pairs every stored receipt with the same bytes
found by the same rule, verifies it against the trust store (roots,
intermediates, CRLs) and returns values: ``pli vault proof`` loads the objects,
calls it and prints, deciding nothing, and any other reader (an API) gets the
same answer. Pure and CPU-bound (parsing, signatures): call it in a thread. It
never logs, and nothing it returns names an attachment or quotes content
beyond the covered bytes the caller asked to check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core import evidence
from gateway.core.trust import TrustStore
from gateway.smime import verify_notarisation

__all__ = ["PART_NOT_FOUND", "Proof", "ReceiptCheck", "check"]

# Why a part receipt fails when the stored message has no attachment at its index.
PART_NOT_FOUND = "part-not-found"


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    """One receipt, the bytes it covers and whether it verifies over them."""

    kind: str  # evidence.RECEIPT, RECEIPT_ORIGINAL or RECEIPT_PART
    part: int | None  # the attachment's index for RECEIPT_PART, else None
    data: bytes  # the covered bytes (empty when the part is not found)
    receipt: bytes  # DER SignedData, as stored
    ok: bool
    why: str  # "" when ok; else the verifier's reason ("digest-mismatch"…), or PART_NOT_FOUND
    received_at: dt.datetime | None  # the reception time it attests, when it verifies

    @property
    def covers(self) -> str:
        """What it covers, as people name it: ``message``, ``original`` or ``part N``."""
        if self.kind == evidence.RECEIPT_ORIGINAL:
            return "original"
        return "message" if self.part is None else f"part {self.part}"


@dataclass(frozen=True, slots=True)
class Proof:
    """Every receipt of a message checked, in the order they were recorded."""

    checks: tuple[ReceiptCheck, ...]
    attachments: int  # attachments of the main object (each was notarised on its own)

    @property
    def verified(self) -> bool:
        """At least one receipt, and every one verifies: no receipt proves nothing."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def received_at(self) -> dt.datetime | None:
        """When pli received the message: the time the first valid receipt attests."""
        return next((c.received_at for c in self.checks if c.ok and c.received_at), None)


def _verify(
    trust: TrustStore, kind: str, part: int | None, data: bytes, receipt: bytes
) -> ReceiptCheck:
    n = verify_notarisation(receipt, data, trust.roots, trust.intermediates, trust.crls())
    why = "" if n.result.ok else (n.result.reason.value if n.result.reason else "invalid")
    return ReceiptCheck(kind, part, data, receipt, n.result.ok, why, n.received_at)


def check(
    trust: TrustStore,
    main: bytes,
    original: bytes | None,
    receipts: Sequence[tuple[str, int | None, bytes]],
) -> Proof:
    """Check ``receipts`` ((kind, part, DER) as recorded) over the main object and the
    original.

    A part receipt whose index no longer holds an attachment fails (PART_NOT_FOUND):
    the stored bytes are not those notarised. Rows of other kinds, a part receipt
    without an index, and an original receipt when no original is stored are not
    receipts this message can be checked against, and are left out.
    """
    found = evidence.attachment_parts(main)
    parts = dict(found)
    out: list[ReceiptCheck] = []
    for kind, part, der in receipts:
        if kind == evidence.RECEIPT:
            out.append(_verify(trust, kind, None, main, der))
        elif kind == evidence.RECEIPT_ORIGINAL and original is not None:
            out.append(_verify(trust, kind, None, original, der))
        elif kind == evidence.RECEIPT_PART and part is not None:
            data = parts.get(part)
            if data is None:
                out.append(ReceiptCheck(kind, part, b"", der, False, PART_NOT_FOUND, None))
            else:
                out.append(_verify(trust, kind, part, data, der))
    return Proof(tuple(out), len(found))
