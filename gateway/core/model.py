"""Values that travel through the message core, frozen so no stage mutates another's."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SessionInfo"]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Who is talking to pli, as the front end saw it (for trace headers and audit)."""

    session_id: str
    protocol: str  # "smtp", "submission", "http", "imap-append"
    remote: str
    helo: str = ""
    tls: str = ""  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384", empty when in clear
    authenticated_as: str = ""
