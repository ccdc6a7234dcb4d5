"""Start and stop a real pli server in a subprocess, on ephemeral ports, in a temp data dir."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.cli import PLI, clean_env, pli_in_process
from tests.support.servers import stop_process

EPHEMERAL = {
    "PLI_SMTP__MTA_PORT": "0",
    "PLI_SMTP__SUBMISSION_PORT": "0",
    "PLI_SMTP__SUBMISSION_TLS_PORT": "0",
    "PLI_IMAP__PORT": "0",
    "PLI_HTTP__PORT": "0",
}


@dataclass
class RunningPli:
    data_dir: Path
    ports: dict[str, int]
    accounts: dict[str, str]
    log_path: Path
    cafile: Path
    proc: subprocess.Popen[bytes]

    def client_context(self) -> ssl.SSLContext:
        """Trusts only this server's dev certificate; no host name (it is dialled by IP)."""
        ctx = ssl.create_default_context(cafile=str(self.cafile))
        ctx.check_hostname = False  # the dev certificate names localhost; we dial 127.0.0.1
        return ctx

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``pli ARGS --data-dir`` this server's directory, run in the test's process (the
        command works on the data directory, as an operator's would next to the server)."""
        return pli_in_process(*args, "--data-dir", str(self.data_dir), stdin=stdin, env=EPHEMERAL)

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(x) for x in self.log_path.read_text().splitlines() if x.startswith("{")]

    def count_events(self, event: str) -> int:
        """How many times the server has logged ``event`` so far (a line still being
        written is not counted yet)."""
        lines = self.log_path.read_text().split("\n")[:-1]  # complete lines only
        return sum(1 for x in lines if x.startswith("{") and json.loads(x).get("event") == event)

    def wait_for_event(self, event: str, seen: int, timeout: float = 10) -> None:
        """Until ``event`` has been logged more than ``seen`` times: a fact to wait for
        rather than a guessed sleep (e.g. a SIGHUP reload done, or refused)."""
        deadline = time.monotonic() + timeout
        while self.count_events(event) <= seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"pli did not log {event} within {timeout} s")
            time.sleep(0.05)


def start_pli(data_dir: Path, *, env: dict[str, str] | None = None) -> RunningPli:
    """Serve ``data_dir``, a data directory ``pli init --demo`` made (see
    ``tests/support/datadir.py``) or one a stopped server left; ``env`` overrides the
    ephemeral ports (e.g. a fixed MTA port for a restart)."""
    if not (data_dir / "pli.toml").exists():
        raise AssertionError(f"{data_dir} is not a data directory: copy the demo one first")
    accounts = dict(
        line.split(" ", 1) for line in (data_dir / "demo-accounts.txt").read_text().splitlines()
    )
    log_path = data_dir / "serve.log"
    ports_file = data_dir / "run" / "ports.json"
    ports_file.unlink(missing_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*PLI, "serve", "--data-dir", str(data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env({**EPHEMERAL, **(env or {})}),
        )
    deadline = time.monotonic() + 60
    while not ports_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"pli serve did not start:\n{log_path.read_text()}")
        time.sleep(0.02)
    ports = json.loads(ports_file.read_text())
    return RunningPli(data_dir, ports, accounts, log_path, data_dir / "tls" / "server.crt", proc)


def stop_pli(pli: RunningPli) -> None:
    stop_process(pli.proc, timeout=20)
