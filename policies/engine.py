"""Policy evaluation: who may send what to whom through this gateway.

Each SMTP step asks as early as it can: MAIL (explicit sender rules, rate
limit, listed sender, trust space), RCPT (explicit rules, never relay,
listed recipient, recipient count) and DATA (size, MIME part count and
types). Every answer is a :class:`Decision` naming the rule that decided, so
``pli policy explain`` and the audit trail say why. Directory failures defer
(``451 4.4.3``): never accept unchecked, never reject permanently because a
dependency is down. The rule set comes from ``policies.rules`` and can be
replaced while running (:meth:`PolicyEngine.reload`).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import structlog

from directory.base import Directory, DirectoryUnavailable, InvalidAddress, normalize_address
from policies import codes, events, reasons, senders
from policies.model import Decision, Verdict
from policies.rules import EncryptionMode, ExplicitRule, RuleError, RuleSet, load_rules

__all__ = ["PolicyEngine"]

log = structlog.get_logger("pli.policy")

_MAX_TRACKED_SENDERS = 100_000  # rate-limit memory bound (oldest senders forgotten)


def _explicit(rule: ExplicitRule) -> Decision:
    code, enhanced = rule.reply_code()
    verdict = {"accept": Verdict.ACCEPT, "reject": Verdict.REJECT, "defer": Verdict.DEFER}[
        rule.action
    ]
    reason = reasons.ACCEPTED if verdict is Verdict.ACCEPT else reasons.LOCAL_POLICY
    text = "OK" if verdict is Verdict.ACCEPT else rule.text
    return Decision(verdict, reason, code, enhanced, text, f"rule.{rule.id}")


class _RateLimiter:
    """Messages per sender in a sliding window, per instance, bounded in memory."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seen: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )

    def allow(self, sender: str, limit: int, window: float) -> bool:
        if limit <= 0:
            return True
        now = self._clock()
        times = self._seen.get(sender)
        if times is None:
            times = self._seen[sender] = collections.deque()
            if len(self._seen) > _MAX_TRACKED_SENDERS:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(sender)
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) >= limit:
            return False
        times.append(now)
        return True


class PolicyEngine:
    def __init__(
        self,
        directory: Directory,
        served_domains: Collection[str],
        rules: RuleSet | None = None,
        *,
        rules_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._served = frozenset(d.lower() for d in served_domains)
        self._rules_file = rules_file
        self.rules = rules if rules is not None else load_rules(rules_file)
        self._rate = _RateLimiter(clock)

    @property
    def directory(self) -> Directory:
        return self._directory

    @property
    def served_domains(self) -> frozenset[str]:
        return self._served

    def reload(self) -> bool:
        """Re-read the rule file; on error keep the current rules (and say so)."""
        if self._rules_file is None:
            return False
        try:
            self.rules = load_rules(self._rules_file)
        except RuleError as exc:
            log.error(events.POLICY_RELOAD_FAILED, error=str(exc))
            return False
        log.info(events.POLICY_RELOADED, rules=len(self.rules.rules))
        return True

    def check_client_certificate(
        self, names: Sequence[str], address: str, *, required: bool
    ) -> Decision:
        """MAIL FROM on a mutual-TLS listener (``policies/senders.py``)."""
        return senders.check_client_certificate(names, address, required=required)

    async def check_submitter(self, user: str, address: str) -> Decision:
        """MAIL FROM of an authenticated user: their own or a delegated mailbox."""
        return await senders.check_submitter(self._directory, user, address)

    def encryption_mode(self, address: str) -> EncryptionMode:
        return self.rules.encryption.mode_for(address)

    async def check_sender(self, address: str, *, count: bool = True) -> Decision:
        """MAIL FROM. ``count=False`` (policy explain) leaves the rate limit untouched."""
        if address == "":  # RFC 5321 §4.5.5: the null reverse-path of DSNs and MDNs
            return Decision(
                Verdict.ACCEPT,
                reasons.ACCEPTED,
                codes.C250_OK,
                codes.X_SENDER_VALID,
                "Sender OK",
                "null-sender",
            )
        try:
            addr = normalize_address(address)
        except InvalidAddress as exc:
            return Decision(
                Verdict.REJECT,
                reasons.INVALID_ADDRESS,
                codes.C553_MAILBOX_NAME_NOT_ALLOWED,
                codes.X_BAD_SENDER_SYNTAX,
                f"Invalid sender address: {exc}",
                "address-syntax",
            )
        for rule in self.rules.rules:
            if rule.recipient is None and rule.matches(addr, None):
                return _explicit(rule)
        limits = self.rules.limits
        if count and not self._rate.allow(addr, limits.messages_per_sender, limits.rate_window):
            return Decision(
                Verdict.DEFER,
                reasons.RATE_LIMITED,
                codes.C450_MAILBOX_UNAVAILABLE,
                codes.X_DELIVERY_NOT_AUTHORIZED_TEMP,
                "Sender rate limit exceeded, try again later",
                "limits.messages_per_sender",
            )
        domain = addr.rpartition("@")[2]
        try:
            if domain in self._served:
                if self.rules.senders.listed and await self._directory.resolve(addr) is None:
                    return Decision(
                        Verdict.REJECT,
                        reasons.SENDER_UNKNOWN,
                        codes.C550_MAILBOX_UNAVAILABLE,
                        codes.X_DELIVERY_NOT_AUTHORIZED,
                        "Sender not in the directory",
                        "senders.listed",
                    )
                return Decision(
                    Verdict.ACCEPT,
                    reasons.ACCEPTED,
                    codes.C250_OK,
                    codes.X_SENDER_VALID,
                    "Sender OK",
                    "senders.listed",
                )
            if self.rules.senders.trust_space and not await self._directory.is_trusted_domain(
                domain
            ):
                # MSSanté: only operators of the trust space may send here.
                return Decision(
                    Verdict.REJECT,
                    reasons.SENDER_NOT_TRUSTED,
                    codes.C550_MAILBOX_UNAVAILABLE,
                    codes.X_DELIVERY_NOT_AUTHORIZED,
                    "Sender domain is not in the MSSante trust space",
                    "senders.trust_space",
                )
        except DirectoryUnavailable:
            return Decision.directory_unavailable("directory")
        return Decision(
            Verdict.ACCEPT,
            reasons.ACCEPTED,
            codes.C250_OK,
            codes.X_SENDER_VALID,
            "Sender OK",
            "senders.trust_space",
        )

    async def check_recipient(
        self,
        address: str,
        *,
        sender: str | None = None,
        accepted_so_far: int = 0,
        may_relay: bool = False,
    ) -> Decision:
        """RCPT TO, knowing the sender and how many recipients were accepted before.

        ``may_relay`` (an authenticated submission) lets a recipient of another
        operator's domain through when that domain is in the trust space; the
        message is then queued for delivery. Nothing else is ever relayed.
        """
        try:
            addr = normalize_address(address)
        except InvalidAddress as exc:
            return Decision(
                Verdict.REJECT,
                reasons.INVALID_ADDRESS,
                codes.C553_MAILBOX_NAME_NOT_ALLOWED,
                codes.X_BAD_DEST_SYNTAX,
                f"Invalid recipient address: {exc}",
                "address-syntax",
            )
        if accepted_so_far >= self.rules.limits.max_recipients:
            # RFC 5321 §4.5.3.1.10: too many recipients is a temporary 452.
            return Decision(
                Verdict.DEFER,
                reasons.TOO_MANY_RECIPIENTS,
                codes.C452_INSUFFICIENT_STORAGE,
                codes.X_TOO_MANY_RECIPIENTS,
                "Too many recipients",
                "limits.max_recipients",
            )
        domain = addr.rpartition("@")[2]
        served = domain in self._served
        if not served and not may_relay:
            # Never relayed, whatever an explicit rule says: no open relay by configuration.
            return Decision(
                Verdict.REJECT,
                reasons.RELAY_DENIED,
                codes.C550_MAILBOX_UNAVAILABLE,
                codes.X_DELIVERY_NOT_AUTHORIZED,
                "Relaying denied: domain not served here",
                "relay",
            )
        for rule in self.rules.rules:
            if rule.recipient is not None and rule.matches(sender, addr):
                decision = _explicit(rule)
                if not decision.accepted or served:
                    return decision
                break  # an accept never skips the trust space of a remote domain
        try:
            if not served:
                if not await self._directory.is_trusted_domain(domain):
                    return Decision(
                        Verdict.REJECT,
                        reasons.RECIPIENT_NOT_TRUSTED,
                        codes.C550_MAILBOX_UNAVAILABLE,
                        codes.X_DELIVERY_NOT_AUTHORIZED,
                        "Recipient domain is not in the MSSante trust space",
                        "relay.trust_space",
                    )
                return Decision(
                    Verdict.ACCEPT,
                    reasons.ACCEPTED,
                    codes.C250_OK,
                    codes.X_DEST_VALID,
                    "Recipient OK, queued for delivery",
                    "relay.trust_space",
                )
            if not self.rules.recipients.listed:
                return Decision(
                    Verdict.ACCEPT,
                    reasons.ACCEPTED,
                    codes.C250_OK,
                    codes.X_DEST_VALID,
                    "Recipient OK",
                    "recipients.listed",
                )
            entry = await self._directory.resolve(addr)
        except DirectoryUnavailable:
            return Decision.directory_unavailable("directory")
        if entry is None:
            return Decision(
                Verdict.REJECT,
                reasons.RECIPIENT_UNKNOWN,
                codes.C550_MAILBOX_UNAVAILABLE,
                codes.X_BAD_DEST_MAILBOX,
                "Recipient not in the directory",
                "recipients.listed",
            )
        return Decision(
            Verdict.ACCEPT,
            reasons.ACCEPTED,
            codes.C250_OK,
            codes.X_DEST_VALID,
            "Recipient OK",
            "recipients.listed",
        )

    def is_local(self, address: str) -> bool:
        return normalize_address(address).rpartition("@")[2] in self._served

    def check_message(self, size: int, part_types: Sequence[str]) -> Decision:
        """DATA: the whole message's size and the MIME types of its parts."""
        limits, att = self.rules.limits, self.rules.attachments
        if size > limits.max_message_size:
            return Decision(
                Verdict.REJECT,
                reasons.MESSAGE_TOO_BIG,
                codes.C552_STORAGE_EXCEEDED,
                codes.X_MESSAGE_TOO_BIG,
                "Message too big for this gateway",
                "limits.max_message_size",
            )
        if len(part_types) > att.max_parts:
            return Decision(
                Verdict.REJECT,
                reasons.TOO_MANY_PARTS,
                codes.C554_TRANSACTION_FAILED,
                codes.X_MEDIA_NOT_SUPPORTED,
                f"Message has more than {att.max_parts} MIME parts",
                "attachments.max_parts",
            )
        for mime_type in part_types:
            if not mime_type.startswith("multipart/") and not att.allows(mime_type):
                return Decision(
                    Verdict.REJECT,
                    reasons.ATTACHMENT_TYPE,
                    codes.C554_TRANSACTION_FAILED,
                    codes.X_ATTACHMENT_TYPE,
                    f"Attachment type not allowed: {mime_type}",
                    "attachments.allowed_types",
                )
        return Decision(
            Verdict.ACCEPT,
            reasons.ACCEPTED,
            codes.C250_OK,
            codes.X_CONTENT_OK,
            "Message OK",
            "attachments.allowed_types",
        )
