"""SMTP reply codes and enhanced status codes by name, so no decision writes a bare number.

Basic codes are RFC 5321 §4.2.2-§4.2.3 (plus RFC 4954 for AUTH), enhanced
codes RFC 3463 §3 (with RFC 7372 additions). Names follow the RFCs' own
wording, as mox's ``smtp/codes.go`` does; a reply is ``f"{code} {enhanced} {text}"``.
"""

from __future__ import annotations

__all__ = [
    "C235_AUTH_OK",
    "C250_OK",
    "C354_START_DATA",
    "C421_CLOSING",
    "C450_MAILBOX_UNAVAILABLE",
    "C451_LOCAL_ERROR",
    "C452_INSUFFICIENT_STORAGE",
    "C454_TEMP_AUTH_FAILURE",
    "C500_SYNTAX_ERROR",
    "C501_BAD_ARGUMENTS",
    "C502_NOT_IMPLEMENTED",
    "C503_BAD_SEQUENCE",
    "C504_PARAM_NOT_IMPLEMENTED",
    "C530_AUTH_REQUIRED",
    "C535_AUTH_INVALID",
    "C550_MAILBOX_UNAVAILABLE",
    "C552_STORAGE_EXCEEDED",
    "C553_MAILBOX_NAME_NOT_ALLOWED",
    "C554_TRANSACTION_FAILED",
    "X_ATTACHMENT_TYPE",
    "X_AUTH_CREDENTIALS_INVALID",
    "X_AUTH_REQUIRED",
    "X_BAD_DEST_MAILBOX",
    "X_BAD_DEST_SYNTAX",
    "X_BAD_SENDER_SYNTAX",
    "X_CONTENT_OK",
    "X_CRYPTO_FAILURE",
    "X_DELIVERY_NOT_AUTHORIZED",
    "X_DELIVERY_NOT_AUTHORIZED_TEMP",
    "X_DEST_VALID",
    "X_DIRECTORY_TEMP",
    "X_INVALID_COMMAND",
    "X_MEDIA_NOT_SUPPORTED",
    "X_MESSAGE_TOO_BIG",
    "X_OK",
    "X_OTHER_PROTOCOL_STATUS",
    "X_OTHER_TEMP",
    "X_SENDER_VALID",
    "X_SYNTAX_ERROR",
    "X_TEMP_AUTH",
    "X_TOO_MANY_RECIPIENTS",
]

# RFC 5321 §4.2.3 basic reply codes.
C235_AUTH_OK = 235  # RFC 4954
C250_OK = 250
C354_START_DATA = 354
C421_CLOSING = 421
C450_MAILBOX_UNAVAILABLE = 450  # temporary: rate limits (RFC 5321 §4.2.3)
C451_LOCAL_ERROR = 451  # temporary: a dependency of ours failed
C452_INSUFFICIENT_STORAGE = 452  # also "too many recipients" (RFC 5321 §4.5.3.1.10)
C454_TEMP_AUTH_FAILURE = 454  # RFC 4954 §6
C500_SYNTAX_ERROR = 500
C501_BAD_ARGUMENTS = 501
C502_NOT_IMPLEMENTED = 502
C503_BAD_SEQUENCE = 503
C504_PARAM_NOT_IMPLEMENTED = 504
C530_AUTH_REQUIRED = 530  # RFC 4954 §6
C535_AUTH_INVALID = 535  # RFC 4954 §6
C550_MAILBOX_UNAVAILABLE = 550  # permanent: unknown mailbox, policy refusal
C552_STORAGE_EXCEEDED = 552  # message too big
C553_MAILBOX_NAME_NOT_ALLOWED = 553  # syntax, or a sender the user may not use
C554_TRANSACTION_FAILED = 554

# RFC 3463 enhanced status codes, class included.
X_OK = "2.0.0"
X_SENDER_VALID = "2.1.0"
X_DEST_VALID = "2.1.5"
X_CONTENT_OK = "2.6.0"
X_OTHER_TEMP = "4.3.0"  # other or undefined mail system status, temporary
X_DIRECTORY_TEMP = "4.4.3"  # directory server failure
X_TOO_MANY_RECIPIENTS = "4.5.3"
X_TEMP_AUTH = "4.7.0"  # RFC 4954: temporary authentication failure
X_DELIVERY_NOT_AUTHORIZED_TEMP = "4.7.1"  # rate limits
X_AUTH_REQUIRED = "5.7.0"  # RFC 4954: authentication or client certificate required
X_BAD_DEST_MAILBOX = "5.1.1"
X_BAD_DEST_SYNTAX = "5.1.3"
X_BAD_SENDER_SYNTAX = "5.1.7"
X_MESSAGE_TOO_BIG = "5.3.4"
X_OTHER_PROTOCOL_STATUS = "5.5.0"
X_INVALID_COMMAND = "5.5.1"
X_SYNTAX_ERROR = "5.5.2"
X_MEDIA_NOT_SUPPORTED = "5.6.0"
X_ATTACHMENT_TYPE = "5.6.1"  # media not supported: this part type
X_DELIVERY_NOT_AUTHORIZED = "5.7.1"
X_CRYPTO_FAILURE = "5.7.5"
X_AUTH_CREDENTIALS_INVALID = "5.7.8"
