"""pli's one error hierarchy: what went wrong, never how a protocol answers it.

Every error the gateway raises on purpose is a :class:`PliError` with a stable
``reason`` code (the ones policies decide live in :mod:`policies.reasons`) and
a ``text`` safe to show a client (no path, SQL, stack or patient data). How it
is answered is decided once per front end — ``gateway.smtp.replies``,
``gateway.imap.responses``, ``gateway.http.problems`` — so the same failure is
a ``451 4.3.0``, a ``NO [UNAVAILABLE]`` and a 503, and a temporary failure can
never become a permanent refusal. The packages below the gateway keep their
own roots (they cannot import it) and the front ends map them the same way::

    PliError                         reason + text
    ├── ConfigError                  the configuration is invalid; the text names the key
    ├── UsageError                   the command line is wrong (exit code 2)
    ├── InvalidInput                 a client's or operator's input is wrong; names the field
    │   ├── WeakPassword             below the password rules
    │   └── gateway.smime.pki.PkiError     the development PKI refused a request
    ├── NotFound                     no such thing, or not yours to see (the same answer)
    │   ├── MailboxNotFound          no such mailbox (folder) for this user
    │   ├── MessageNotFound          no such UID (or no longer)
    │   └── AccountNotFound          no account for this address
    ├── Conflict                     the name is taken
    │   └── MailboxExists            CREATE/RENAME onto an existing mailbox
    ├── Refused                      permanent: retrying the same request fails again
    │   ├── PermissionDenied         rights missing; ``code`` is the RFC 5530 response code
    │   ├── ContentRefused           the message itself (header bomb, bad MIME)
    │   │   └── gateway.xdm.errors.XdmError   a refused IHE XDM package, CDA or INS
    │   ├── OutboundNotSecured       ``force`` encryption and a certificate vanished
    │   └── gateway.smime.cms.SmimeError      bad, unsupported or undecryptable CMS
    │       └── gateway.smime.hsm.HsmError    the token refuses the request itself
    └── TemporaryFailure             a dependency failed; try again later, never a 5xx
        ├── Unavailable              database, vault or a dependency down
        │   ├── gateway.smime.hsm.HsmUnavailable      the token or its session failed
        │   └── gateway.http.oidc.OidcUnavailable     the identity provider's keys
        └── LoginThrottled           too many failed logins; no password was checked

    directory.base.DirectoryError    (its own root: directory imports no gateway)
    ├── DirectoryUnavailable         -> answered as a TemporaryFailure
    └── InvalidAddress, NotInDirectory, DelegationRefused, TrustListError, ...
    vault.base.VaultError            (its own root: the vault imports no gateway)
    ├── VaultUnavailable             -> answered as a TemporaryFailure
    └── ObjectNotFound, IntegrityError, RetentionLocked, LegalHoldActive,
        retention.HoldNotFound, pkcs11.TokenOpenError
    sqlalchemy's OperationalError, TimeoutError   the database is down or saturated
                                     -> answered as a TemporaryFailure
    policies.rules.RuleError         a rule file is invalid (-> ConfigError at start-up)

:func:`is_temporary` is the one answer to "may the client retry?" for all of
them. Front ends and pure parsers also raise small private signals that never
leave their package: ``No`` and ``ParseError`` in the IMAP front end,
``ApiProblem`` in the API, ``Failed`` inside the S/MIME verifier. A broken invariant is
a bug, not a failure: it raises a builtin ``RuntimeError`` or ``TypeError``,
which every front end answers as unexpected (``451 4.3.0``, ``NO [SERVERBUG]``,
a 500 with an incident id) with its traceback logged. ``assert`` is for tests
only (ruff's S101): ``python -O`` strips it.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError

from directory.base import DirectoryUnavailable
from vault.base import VaultUnavailable

__all__ = [
    "AccountNotFound",
    "ConfigError",
    "Conflict",
    "ContentRefused",
    "InvalidInput",
    "LoginThrottled",
    "MailboxExists",
    "MailboxNotFound",
    "MessageNotFound",
    "NotFound",
    "OutboundNotSecured",
    "PermissionDenied",
    "PliError",
    "Refused",
    "TemporaryFailure",
    "Unavailable",
    "UsageError",
    "WeakPassword",
    "is_temporary",
]


class PliError(Exception):
    """Base of pli's own errors: a stable ``reason`` code and a ``text`` fit for a client."""

    default_reason = "internal"

    def __init__(self, text: str, *, reason: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.reason = reason or self.default_reason


class ConfigError(PliError):
    """The configuration is invalid; the message names the offending key."""

    default_reason = "config"


class UsageError(PliError):
    """The command line is wrong (exit code 2)."""

    default_reason = "usage"


class InvalidInput(PliError):
    """What a client or operator gave is wrong; the text names the field or line."""

    default_reason = "invalid-input"


class WeakPassword(InvalidInput):
    """The password does not meet the minimum rules."""

    default_reason = "weak-password"


class NotFound(PliError):
    """No such thing, or one the caller may not see: the two get the same answer."""

    default_reason = "not-found"


class MailboxNotFound(NotFound):
    """The user has no such mailbox (folder), or may not see it."""

    default_reason = "no-such-mailbox"

    def __init__(self, name: str) -> None:
        super().__init__(name)


class MessageNotFound(NotFound):
    """The UID is not (or no longer) in the mailbox."""

    default_reason = "no-such-message"

    def __init__(self, text: str) -> None:
        super().__init__(text)


class AccountNotFound(NotFound):
    """No account (mailbox address) of that name here."""

    default_reason = "no-such-account"

    def __init__(self, address: str) -> None:
        super().__init__(f"no mailbox account {address}")
        self.address = address


class Conflict(PliError):
    """The name asked for is taken."""

    default_reason = "conflict"


class MailboxExists(Conflict):
    """CREATE/RENAME onto a name that is taken (RFC 5530 ALREADYEXISTS)."""

    default_reason = "mailbox-exists"

    def __init__(self, name: str) -> None:
        super().__init__(name)


class Refused(PliError):
    """A permanent refusal: the client must not retry the same thing."""

    default_reason = "refused"


class PermissionDenied(Refused):
    """An operation the caller's rights do not cover; ``code`` is an RFC 5530 response code
    (``NOPERM``, ``CANNOT``, ``TRYCREATE``) that IMAP shows and the API maps to a status."""

    default_reason = "permission-denied"

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


class ContentRefused(Refused):
    """The message itself is refused (a header bomb, malformed structure)."""

    default_reason = "content-refused"


class OutboundNotSecured(Refused):
    """``force`` mode, and a recipient's certificate vanished between RCPT and DATA."""

    default_reason = "recipient-no-certificate"

    def __init__(self) -> None:
        super().__init__("Encryption required but a recipient certificate is missing")


class TemporaryFailure(PliError):
    """A dependency failed: the client should try again later (never a 5xx)."""

    default_reason = "temporary-failure"


class Unavailable(TemporaryFailure):
    """The database, the vault, the directory or an identity provider does not answer."""

    default_reason = "unavailable"


class LoginThrottled(TemporaryFailure):
    """Too many failed logins for this address or client: refused before any check."""

    default_reason = "login-throttled"

    def __init__(self) -> None:
        super().__init__("Too many failed logins, try again later")


def is_temporary(exc: BaseException) -> bool:
    """Whether the client may retry: true for every dependency failure of any package,
    the database's included (a lost connection, a pool exhausted, a locked SQLite)."""
    return isinstance(
        exc,
        TemporaryFailure
        | DirectoryUnavailable
        | VaultUnavailable
        | OperationalError
        | SqlTimeoutError,
    )
