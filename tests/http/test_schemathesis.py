"""Property tests generated from /openapi.json against the live API: no input makes it fail
with a 5xx, and every operation is documented with examples."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err

from gateway.app.services import build_services
from gateway.http.api import create_app, start_http
from gateway.mailstore.tokens import TokenService
from tests.http.conftest import DPI, make_settings
from tests.support.profiles import examples

_EXAMPLES = examples(20)  # per operation


def _fuzz(base: str, token: str) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    tested = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the schema pli publishes could not be read
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                base_url=base,
                headers={"Authorization": f"Bearer {token}"},
                checks=[not_a_server_error],
                timeout=30,
            )

        check()
        tested.append(operation.label)
    return tested


async def test_no_generated_request_causes_a_server_error(data_dir: Path) -> None:
    cfg = make_settings(data_dir, max_upload=256 * 1024, long_poll_max=0.2)
    async with AsyncExitStack() as stack:
        services = await build_services(cfg, stack)
        server = await start_http(create_app(services, cfg), "127.0.0.1", 0)
        stack.push_async_callback(server.close)
        _, token = await TokenService(services.engine).create(DPI, {"send", "read", "audit"})
        base = f"http://127.0.0.1:{server.port}"
        # Schemathesis is synchronous: it runs in a thread while this loop serves.
        tested = await asyncio.to_thread(_fuzz, base, token)
    assert "POST /v1/messages" in tested and "GET /v1/audit/events" in tested
    assert len(tested) >= 13


async def test_openapi_documents_examples_and_problems(data_dir: Path) -> None:
    cfg = make_settings(data_dir)
    async with AsyncExitStack() as stack:
        services = await build_services(cfg, stack)
        doc = create_app(services, cfg).openapi()
    send = doc["paths"]["/v1/messages"]["post"]
    assert set(send["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "application/problem+json" in send["responses"]["422"]["content"]
    assert doc["components"]["schemas"]["SendRequest"]["properties"]["to"]["examples"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
