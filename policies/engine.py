"""The default policy: who may send to whom through this gateway (pure evaluation).

A recipient is accepted only if its domain is served here and the directory
lists it (``550 5.1.1`` otherwise); any other domain is refused, so pli never
relays. A sender must be in a served or trust-space (liste blanche) domain.
Directory failures defer (``451 4.4.3``): never accept unchecked, never reject
permanently because a dependency is down. The declarative rule file of the
SMTP issue replaces the fixed rules here; the Decision shape stays.
"""

from __future__ import annotations

from collections.abc import Collection

from directory.base import Directory, DirectoryUnavailable, InvalidAddress, normalize_address
from policies import reasons
from policies.model import Decision, Verdict

__all__ = ["PolicyEngine"]


def _defer_directory() -> Decision:
    return Decision(Verdict.DEFER, reasons.DIRECTORY_UNAVAILABLE, 451, "4.4.3",
                    "Directory unavailable, try again later")


class PolicyEngine:
    def __init__(self, directory: Directory, served_domains: Collection[str]) -> None:
        self._directory = directory
        self._served = frozenset(d.lower() for d in served_domains)

    @property
    def served_domains(self) -> frozenset[str]:
        return self._served

    async def check_sender(self, address: str) -> Decision:
        if address == "":  # RFC 5321 §4.5.5: the null reverse-path of DSNs and MDNs
            return Decision.accept("Sender OK", "2.1.0")
        try:
            addr = normalize_address(address)
        except InvalidAddress as exc:
            return Decision(Verdict.REJECT, reasons.INVALID_ADDRESS, 553, "5.1.7",
                            f"Invalid sender address: {exc}")
        domain = addr.rpartition("@")[2]
        if domain in self._served:
            return Decision.accept("Sender OK", "2.1.0")
        try:
            trusted = await self._directory.is_trusted_domain(domain)
        except DirectoryUnavailable:
            return _defer_directory()
        if not trusted:
            # MSSanté: only operators of the trust space may send here.
            return Decision(Verdict.REJECT, reasons.SENDER_NOT_TRUSTED, 550, "5.7.1",
                            "Sender domain is not in the MSSante trust space")
        return Decision.accept("Sender OK", "2.1.0")

    async def check_recipient(self, address: str) -> Decision:
        try:
            addr = normalize_address(address)
        except InvalidAddress as exc:
            return Decision(Verdict.REJECT, reasons.INVALID_ADDRESS, 553, "5.1.3",
                            f"Invalid recipient address: {exc}")
        if addr.rpartition("@")[2] not in self._served:
            return Decision(Verdict.REJECT, reasons.RELAY_DENIED, 550, "5.7.1",
                            "Relaying denied: domain not served here")
        try:
            entry = await self._directory.resolve(addr)
        except DirectoryUnavailable:
            return _defer_directory()
        if entry is None:
            return Decision(Verdict.REJECT, reasons.RECIPIENT_UNKNOWN, 550, "5.1.1",
                            "Recipient not in the directory")
        return Decision.accept("Recipient OK", "2.1.5")
