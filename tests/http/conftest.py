"""Fixtures of the HTTP API tests: a demo data directory per module, and per test the
composition root's services with the API served by real uvicorn on an ephemeral port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.app.services import Services, build_services
from gateway.base.config import Settings, load_settings
from gateway.http.api import create_app, start_http
from gateway.mailstore.tokens import TokenService
from tests.support.datadir import DemoDataDirs

DPI = "dpi@ch-arras.mssante.fr"  # an APP mailbox of the demo directory
CABINET = "cabinet.petit@medecin.mssante.fr"  # a CAB mailbox: another token holder
DOCTOR = "sophie.bernard@ch-arras.mssante.fr"  # a PER mailbox


@dataclass
class Api:
    base: str
    services: Services
    settings: Settings

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base, headers=headers, timeout=30)

    async def token(self, mailbox: str, *scopes: str) -> str:
        _, secret = await TokenService(self.services.engine).create(mailbox, scopes)
        return secret


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, demo_dirs: DemoDataDirs) -> Path:
    return demo_dirs.copy(tmp_path_factory.mktemp("pli-http") / "var")


def make_settings(data_dir: Path, **http: object) -> Settings:
    return load_settings(data_dir=data_dir, environ={}, overrides={"http": {"port": 0, **http}})


@pytest.fixture
async def api(data_dir: Path) -> AsyncIterator[Api]:
    settings = make_settings(data_dir, max_upload=256 * 1024)
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        server = await start_http(create_app(services, settings), "127.0.0.1", 0)
        stack.push_async_callback(server.close)
        yield Api(f"http://127.0.0.1:{server.port}", services, settings)
