"""The SMTP front end's one error->reply function: permanent only for a known refusal.

A client retries a 4xx and gives up on a 5xx, so the class of every answer
is what matters; and an unexpected error never shows its text (paths, SQL).
"""

from __future__ import annotations

import pytest

from directory.base import DirectoryUnavailable
from gateway.base.errors import (
    ContentRefused,
    LoginThrottled,
    OutboundNotSecured,
    PliError,
    Refused,
    Unavailable,
)
from gateway.smime.cms import CmsTooLarge, MalformedCms
from gateway.smtp import replies
from gateway.xdm.errors import XdmUnsafe
from policies import reasons
from vault.base import VaultUnavailable


@pytest.mark.parametrize(
    ("exc", "start"),
    [
        (LoginThrottled(), "454 4.7.0 "),
        (DirectoryUnavailable("ldap down"), "451 4.4.3 "),
        (Unavailable("x", reason=reasons.DIRECTORY_UNAVAILABLE), "451 4.4.3 "),
        (VaultUnavailable("s3 down"), "451 4.3.0 "),
        (Unavailable("Storage unavailable"), "451 4.3.0 Storage unavailable"),
        (XdmUnsafe("zip bomb", member="a.zip"), "550 5.6.0 a.zip: zip bomb"),
        (CmsTooLarge("too big"), "552 5.3.4 "),
        (MalformedCms("bad"), "554 5.7.5 "),
        (OutboundNotSecured(), "554 5.7.1 "),
        (ContentRefused("Message header too big"), "554 5.6.0 "),
        (Refused("no"), "550 5.7.1 no"),
        (PliError("odd"), "451 4.3.0 odd"),
    ],
)
def test_each_kind_gets_its_class_of_answer(exc: BaseException, start: str) -> None:
    assert replies.for_error(exc, "ref9").startswith(start)
    assert replies.for_error(exc, "ref9").endswith(" [ref9]")


def test_an_unexpected_error_shows_nothing_of_itself() -> None:
    reply = replies.for_error(RuntimeError("/var/lib/pli/pli.db: SELECT secret"), "ref9")
    assert reply == "451 4.3.0 Internal error, try again later [ref9]"
