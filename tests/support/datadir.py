"""Demo data directories made once per session and copied for each test that needs one.

``pli init --demo`` costs about two seconds (keys, a development PKI, the TLS
certificate, every migration, the demo directory and its passwords); a copy
of the result costs a few milliseconds. Each set of served domains gets its
own template, made by the same ``init_data_dir`` the command calls, the first
time a test asks for it. Copies share the template's keys and demo passwords,
which no test compares across data directories. ``pli init`` itself stays
covered by ``tests/gateway/test_cli.py``, which runs the real command.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gateway.app.datadir import init_data_dir

__all__ = ["DemoDataDirs"]


class DemoDataDirs:
    """Templates under ``root`` (one per domain set); ``copy`` gives a test its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[tuple[str, ...], Path] = {}
        self._lock = threading.Lock()

    def _template(self, domains: tuple[str, ...]) -> Path:
        with self._lock:
            if domains not in self._made:
                path = self.root / f"t{len(self._made)}" / "var"
                # A thread of its own: the caller may be inside a running event loop.
                with ThreadPoolExecutor(1) as pool:
                    pool.submit(
                        asyncio.run, init_data_dir(path, demo=True, domains=domains)
                    ).result()
                self._made[domains] = path
            return self._made[domains]

    def copy(self, dest: Path, *, domains: tuple[str, ...] = (), config_extra: str = "") -> Path:
        """A data directory at ``dest`` as ``pli init --demo [--domain D...]`` leaves it,
        with ``config_extra`` appended to its ``pli.toml``; returns ``dest``."""
        shutil.copytree(self._template(domains), dest)  # modes kept: secrets stay 0600
        if config_extra:
            with (dest / "pli.toml").open("a") as cfg:
                cfg.write("\n" + config_extra)
        return dest
