"""The declarative rule set: a TOML file an operator edits, validated before use.

The defaults implement the MSSanté reference: senders of served domains must
hold a mailbox, other senders must belong to the trust space (liste
blanche), recipients must be listed, the gateway never relays, and a message
has a size limit, an attachment-type allow list, a per-sender rate limit and
an encryption mode per domain or mailbox. Explicit ``[[rule]]`` entries come
first, in file order, and the first one matching the envelope decides.

A file that does not validate is refused as a whole with the offending key
and line named (``pli policy check``); a running gateway keeps its previous
rules when a reload fails.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from policies import codes

__all__ = [
    "DEFAULT_RULES_FILE",
    "AttachmentRules",
    "EncryptionMode",
    "EncryptionRules",
    "ExplicitRule",
    "Limits",
    "RuleError",
    "RuleSet",
    "load_rules",
    "parse_rules",
]

# Document types health software exchanges (CDA/XDM, PDF reports, images, HL7, text).
DEFAULT_TYPES = (
    "application/pdf",
    "application/xml",
    "text/xml",
    "application/zip",
    "application/x-zip-compressed",
    "application/hl7-v2",
    "application/dicom",
    "image/jpeg",
    "image/png",
    "image/tiff",
    "text/plain",
    "text/html",
    "text/csv",
    "application/pkcs7-signature",
    "application/pkcs7-mime",
    "application/x-pkcs7-signature",
    "application/x-pkcs7-mime",
    "message/rfc822",
    "message/disposition-notification",
    "message/delivery-status",
    "application/octet-stream",
)


class RuleError(ValueError):
    """The rule file is invalid; the message names the file, key and reason."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncryptionMode(StrEnum):
    FORCE = "force"  # refuse a recipient without a valid certificate
    OPPORTUNISTIC = "opportunistic"  # encrypt when every certificate is there
    NONE = "none"


class Limits(_Model):
    max_message_size: int = Field(50 * 1024 * 1024, gt=0)  # bytes: 552 5.3.4 beyond
    max_recipients: int = Field(100, gt=0)  # per message: 452 4.5.3 beyond
    messages_per_sender: int = Field(5000, ge=0)  # per window; 0 = no limit: 450 4.7.1
    rate_window: int = Field(3600, gt=0)  # seconds


class SenderRules(_Model):
    listed: bool = True  # a served-domain sender must be in the directory
    trust_space: bool = True  # another domain must be on the liste blanche


class RecipientRules(_Model):
    listed: bool = True  # 550 5.1.1 for an address the directory does not hold


class AttachmentRules(_Model):
    # MIME types allowed for the parts of a message; "*" allows anything.
    allowed_types: tuple[str, ...] = DEFAULT_TYPES
    max_parts: int = Field(200, gt=0)  # MIME bombs: 554 5.6.0 beyond

    @field_validator("allowed_types")
    @classmethod
    def _lower(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for t in v:
            if t != "*" and (t.count("/") != 1 or not t.replace("/", "").strip()):
                raise ValueError(f"not a MIME type: {t!r}")
        return tuple(t.lower() for t in v)

    def allows(self, mime_type: str) -> bool:
        return "*" in self.allowed_types or mime_type.lower() in self.allowed_types


class EncryptionRules(_Model):
    default: EncryptionMode = EncryptionMode.OPPORTUNISTIC
    domains: dict[str, EncryptionMode] = Field(default_factory=dict)
    mailboxes: dict[str, EncryptionMode] = Field(default_factory=dict)

    def mode_for(self, address: str) -> EncryptionMode:
        """A mailbox setting wins over its domain's, which wins over the default."""
        address = address.lower()
        if address in self.mailboxes:
            return self.mailboxes[address]
        return self.domains.get(address.rpartition("@")[2], self.default)


class ExplicitRule(_Model):
    """``[[rule]]``: envelope patterns (shell globs, case-insensitive) and a verdict."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    sender: str | None = Field(None, alias="from")
    recipient: str | None = Field(None, alias="to")
    action: Literal["accept", "reject", "defer"]
    code: int | None = None
    enhanced: str | None = Field(None, pattern=r"^[245]\.[0-9]{1,3}\.[0-9]{1,3}$")
    text: str = Field("Refused by local policy", max_length=200)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("text")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if any(c in v for c in "\r\n\x00"):
            raise ValueError("text must be one line")
        return v

    def reply_code(self) -> tuple[int, str]:
        default = {
            "accept": (codes.C250_OK, codes.X_SENDER_VALID),
            "reject": (codes.C550_MAILBOX_UNAVAILABLE, codes.X_DELIVERY_NOT_AUTHORIZED),
            "defer": (codes.C451_LOCAL_ERROR, codes.X_DELIVERY_NOT_AUTHORIZED_TEMP),
        }
        code, enhanced = default[self.action]
        code = self.code or code
        enhanced = self.enhanced or enhanced
        want = {"accept": 2, "reject": 5, "defer": 4}[self.action]
        if code // 100 != want or int(enhanced[0]) != want:
            raise RuleError(
                f"rule {self.id!r}: code {code} {enhanced} does not match action {self.action!r}"
            )
        return code, enhanced

    def matches(self, sender: str | None, recipient: str | None) -> bool:
        """Whether the rule applies; a pattern the rule sets needs its address known."""
        if self.sender is not None and (
            sender is None or not fnmatch.fnmatchcase(sender.lower(), self.sender.lower())
        ):
            return False
        if self.recipient is not None:
            return recipient is not None and fnmatch.fnmatchcase(
                recipient.lower(), self.recipient.lower()
            )
        return True


class RuleSet(_Model):
    version: Literal[1] = 1
    limits: Limits = Limits()
    senders: SenderRules = SenderRules()
    recipients: RecipientRules = RecipientRules()
    attachments: AttachmentRules = AttachmentRules()
    encryption: EncryptionRules = EncryptionRules()
    rules: tuple[ExplicitRule, ...] = Field((), alias="rule")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _where(data: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{p + 1}]"]
        else:
            parts.append(str(p))
    return ".".join(parts) or "(file)"


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate a TOML rule file's text; RuleError names the key (and line for TOML)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{source}: invalid TOML: {exc}") from None
    try:
        rules = RuleSet.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RuleError(f"{source}: {_where(data, err['loc'])}: {err['msg']}") from None
    seen: set[str] = set()
    for rule in rules.rules:
        if rule.id in seen:
            raise RuleError(f"{source}: rule[{rule.id}]: duplicate rule id")
        seen.add(rule.id)
        if rule.sender is None and rule.recipient is None:
            raise RuleError(f"{source}: rule[{rule.id}]: needs 'from' or 'to'")
        try:
            rule.reply_code()
        except RuleError as exc:
            raise RuleError(f"{source}: {exc}") from None
    return rules


DEFAULT_RULES_FILE = Path(__file__).with_name("default-rules.toml")


def load_rules(path: Path | None) -> RuleSet:
    """The rules of ``path``, or the built-in defaults when no file is configured."""
    if path is None:
        return RuleSet()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read the rule file: {exc}") from None
    return parse_rules(text, str(path))
