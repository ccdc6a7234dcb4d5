"""Mutual TLS for the API: the verified client certificate of a connection, and the mailbox
it authenticates.

uvicorn does not put the peer certificate in the ASGI scope, so
:class:`ClientCertProtocol` (its h11 protocol) adds it per connection under
``scope["extensions"]["tls"]["client_cert"]`` (the decoded form of
``SSLSocket.getpeercert``; the handshake already verified the chain against
``http.client_ca_file``). :class:`CertAuthority` maps a certificate to a
mailbox: its subjectAltName e-mail must be a shared mailbox of the directory
(APP, ORG or CAB), which then gets the ``send`` and ``read`` scopes. No
certificate field other than the serial number is logged or audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from directory.base import DELEGABLE_KINDS, Directory, InvalidAddress, normalize_address

__all__ = ["CERT_SCOPES", "CertAuthority", "ClientCertProtocol", "peer_certificate"]

CERT_SCOPES = frozenset({"send", "read"})


class ClientCertProtocol(H11Protocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        sslobj = transport.get_extra_info("ssl_object")
        cert = sslobj.getpeercert() if sslobj is not None else None
        if not cert:
            return
        inner = self.app

        async def with_cert(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("extensions", {}).setdefault("tls", {})["client_cert"] = cert
            await inner(scope, receive, send)

        self.app = with_cert


def peer_certificate(scope: Mapping[str, Any]) -> dict[str, Any] | None:
    """The verified client certificate of the request's connection, if any."""
    cert = scope.get("extensions", {}).get("tls", {}).get("client_cert")
    return cert if isinstance(cert, dict) else None


class CertAuthority:
    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    async def mailbox(self, cert: Mapping[str, Any]) -> str | None:
        """The shared mailbox the certificate names (SAN rfc822Name), None if it names none.

        Raises ``DirectoryUnavailable`` when the directory cannot answer (a 503).
        """
        for kind, value in cert.get("subjectAltName") or ():
            if kind != "email":
                continue
            try:
                address = normalize_address(str(value))
            except InvalidAddress:
                continue
            entry = await self._directory.resolve(address)
            if entry is not None and entry.kind.value in DELEGABLE_KINDS:
                return address
        return None

    @staticmethod
    def actor(cert: Mapping[str, Any]) -> str:
        return f"cert:{str(cert.get('serialNumber', ''))[:40]}"
