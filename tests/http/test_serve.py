"""The API inside a real ``pli serve``: started by the composition root, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gateway.base.db import create_engine
from gateway.mailstore.tokens import TokenService
from tests.gateway.running import start_pli, stop_pli
from tests.http.conftest import DOCTOR, DPI
from tests.support.datadir import DemoDataDirs

pytestmark = pytest.mark.slow  # end to end: a real `pli serve` process


async def _token(data_dir: Path) -> str:
    engine = create_engine(f"sqlite+aiosqlite:///{(data_dir / 'pli.db').resolve()}")
    try:
        return (await TokenService(engine).create(DPI, {"send", "read"}))[1]
    finally:
        await engine.dispose()


def test_pli_serve_runs_the_api(tmp_path: Path, demo_dirs: DemoDataDirs) -> None:
    pli = start_pli(demo_dirs.copy(tmp_path / "var"))
    try:
        base = f"http://127.0.0.1:{pli.ports['http']}"
        token = asyncio.run(_token(pli.data_dir))
        with httpx.Client(base_url=base, timeout=30) as c:
            assert c.get("/healthz").json() == {"status": "ok"}
            assert c.get("/readyz").status_code == 200
            assert c.get("/openapi.json").json()["info"]["title"] == "pli API"
            r = c.post(
                "/v1/messages",
                json={"to": [DOCTOR], "subject": "s", "body": "b"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 202, r.text
            assert "pli_messages_accepted_total 1.0" in c.get("/metrics").text
    finally:
        stop_pli(pli)
    # SIGTERM reached pli's own handler (uvicorn did not take it): a clean exit.
    assert pli.proc.returncode == 0, pli.log_path.read_text()[-2000:]
