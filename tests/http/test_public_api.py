"""Pins the HTTP package's public names: changing them is a decision, not an accident."""

from __future__ import annotations

import pytest

from tests.support.public_api import check_public_names

PUBLIC = {
    "gateway.http.api": [
        "HttpServer",
        "ReadinessCheck",
        "create_app",
        "default_checks",
        "start_http",
    ],
    "gateway.http.audit": ["audit_router"],
    "gateway.http.auth": [
        "CALLER_KEY",
        "FAILURE_KEY",
        "Caller",
        "RateLimiter",
        "bearer_dependency",
    ],
    "gateway.http.context": ["ApiContext", "ApiServices"],
    "gateway.http.dpi": ["add_send_schemas", "dpi_router"],
    "gateway.http.metrics": ["CONTENT_TYPE_LATEST", "ApiMetrics"],
    "gateway.http.middleware": ["MSG_KEY", "BodyLimit", "CallRecorder"],
    "gateway.http.mtls": ["CERT_SCOPES", "CertAuthority", "ClientCertProtocol", "peer_certificate"],
    "gateway.http.oidc": ["OidcIdentity", "OidcUnavailable", "OidcVerifier"],
    "gateway.http.problems": [
        "PROBLEM_JSON",
        "ApiProblem",
        "Problem",
        "install_handlers",
        "problem_response",
        "problem_responses",
    ],
    "gateway.http.queries": [
        "DeliveryRow",
        "MdnRow",
        "MetricsSnapshot",
        "SentStatus",
        "metrics_snapshot",
        "sent_status",
    ],
    "gateway.mailstore.queries": [
        "LocalCopy",
        "MessageRow",
        "blob_of",
        "find_message",
        "list_messages",
        "local_copies",
        "max_uid",
        "message_blobs",
        "messages_of_mailbox",
        "sent_copy",
    ],
    "gateway.core.records": [
        "Ack",
        "EvidenceRow",
        "acks",
        "acks_for_ref",
        "evidence_objects",
        "evidence_rows",
        "forget_evidence",
    ],
    "gateway.http.send": [
        "Attachment",
        "CdaDocument",
        "Outgoing",
        "SendRequest",
        "SendResult",
        "submit",
    ],
    "gateway.mailstore.tokens": [
        "SCOPES",
        "TokenInfo",
        "TokenService",
        "hash_secret",
        "split_token",
    ],
    "gateway.cli.token": ["add_parser", "command", "run"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names(module: str) -> None:
    check_public_names(module, PUBLIC[module])
