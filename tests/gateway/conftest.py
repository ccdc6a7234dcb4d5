"""Fixtures of the gateway tests: one real pli server per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.running import RunningPli, start_pli, stop_pli


@pytest.fixture(scope="module")
def pli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPli]:
    running = start_pli(tmp_path_factory.mktemp("pli") / "var")
    try:
        yield running
    finally:
        stop_pli(running)
