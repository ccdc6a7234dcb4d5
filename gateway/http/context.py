"""What the API's routes are given: the services the composition root built, and its own.

A Protocol for the composition root's ``Services`` (so this package never
imports ``gateway.app.services``, which imports it) and the :class:`ApiContext` every
router factory receives. Built once per app by :func:`gateway.http.api.create_app`;
there is no module-level instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from directory.base import Directory
from gateway.base.config import Settings
from gateway.core.ingest import IngestService
from gateway.http.metrics import ApiMetrics
from gateway.mailstore.store import MailStore
from gateway.mailstore.tokens import TokenService
from vault.service import Vault

__all__ = ["ApiContext", "ApiServices"]


class ApiServices(Protocol):
    """The part of ``gateway.app.services.Services`` the API uses."""

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def directory(self) -> Directory: ...

    @property
    def vault(self) -> Vault: ...

    @property
    def ingest(self) -> IngestService: ...

    @property
    def mailstore(self) -> MailStore: ...


@dataclass(frozen=True, slots=True)
class ApiContext:
    services: ApiServices
    settings: Settings
    tokens: TokenService
    metrics: ApiMetrics

    @property
    def engine(self) -> AsyncEngine:
        return self.services.engine
