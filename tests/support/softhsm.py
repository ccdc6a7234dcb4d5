"""SoftHSM 2 for the tests: one token directory per session, a fresh token per test.

SoftHSM reads SOFTHSM2_CONF once per process, so the variable is set for the
whole session before any test loads the library; pli servers started by the
tests inherit it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4321"
SO_PIN = "87654321"


@dataclass(frozen=True)
class SoftHsm:
    root: Path
    module: str = MODULE
    pin: str = PIN

    def new_token(self, prefix: str = "pli") -> str:
        """Initialise a token of its own for one test; return its label."""
        label = f"{prefix}-{secrets.token_hex(4)}"
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                self.pin,
                "--so-pin",
                SO_PIN,
            ],
            check=True,
            capture_output=True,
            env={**os.environ},
        )
        return label


def available() -> bool:
    return Path(MODULE).exists() and shutil.which("softhsm2-util") is not None


def configure(root: Path) -> Path:
    """Write a configuration keeping tokens under ``root``; return its path."""
    (root / "tokens").mkdir(parents=True, exist_ok=True)
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    return conf
