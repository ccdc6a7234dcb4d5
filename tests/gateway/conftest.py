"""Fixtures of the gateway tests: one real pli server per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.running import RunningPli, start_pli, stop_pli
from tests.support.datadir import DemoDataDirs


@pytest.fixture(scope="module")
def pli(tmp_path_factory: pytest.TempPathFactory, demo_dirs: DemoDataDirs) -> Iterator[RunningPli]:
    running = start_pli(demo_dirs.copy(tmp_path_factory.mktemp("pli") / "var"))
    try:
        yield running
    finally:
        stop_pli(running)
