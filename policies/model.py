"""Decisions are values: a verdict, a reason code and the exact reply it maps to.

Front ends turn a Decision into a protocol reply and an audit entry; they
never invent codes of their own. ``pli policy explain`` will replay the same
evaluation and print these values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from policies import codes, reasons

__all__ = ["Decision", "Verdict"]


class Verdict(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"  # permanent: 5xx
    DEFER = "defer"  # temporary: 4xx


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str
    smtp_code: int
    enhanced_code: str
    text: str
    rule_id: str = "default"

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPT

    @classmethod
    def accept(
        cls, text: str = "OK", enhanced: str = codes.X_DEST_VALID, rule_id: str = "default"
    ) -> Decision:
        return cls(Verdict.ACCEPT, reasons.ACCEPTED, codes.C250_OK, enhanced, text, rule_id)

    @classmethod
    def directory_unavailable(cls, rule_id: str) -> Decision:
        """The directory cannot answer now: try again later (``451 4.4.3``), never accept
        unchecked and never refuse for good because a dependency is down."""
        return cls(
            Verdict.DEFER,
            reasons.DIRECTORY_UNAVAILABLE,
            codes.C451_LOCAL_ERROR,
            codes.X_DIRECTORY_TEMP,
            "Directory unavailable, try again later",
            rule_id,
        )
