"""Start and stop a real pli server in a subprocess, on ephemeral ports, in a temp data dir."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import stop_process

PLI = [sys.executable, "-m", "gateway"]


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
        return subprocess.run(
            [*PLI, *args, "--data-dir", str(self.data_dir)], input=stdin,
            capture_output=True, text=True, timeout=60, env=_env(),
        )

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(x) for x in self.log_path.read_text().splitlines() if x.startswith("{")]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLI_")}
    env.update(PLI_SMTP__MTA_PORT="0", PLI_SMTP__SUBMISSION_PORT="0",
               PLI_SMTP__SUBMISSION_TLS_PORT="0", PLI_IMAP__PORT="0", PLI_HTTP__PORT="0")
    return env


def start_pli(data_dir: Path, *, domains: tuple[str, ...] = (), config_extra: str = "",
              env: dict[str, str] | None = None) -> RunningPli:
    """Initialise (if new) and serve ``data_dir``; ``config_extra`` is appended to pli.toml
    once, ``env`` overrides the ephemeral ports (e.g. a fixed MTA port for a restart)."""
    fresh = not (data_dir / "pli.toml").exists()
    domain_args = [a for d in domains for a in ("--domain", d)]
    init = subprocess.run([*PLI, "init", "--demo", *domain_args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, env=_env())
    assert init.returncode == 0, init.stderr
    if fresh and config_extra:
        with (data_dir / "pli.toml").open("a") as cfg:
            cfg.write("\n" + config_extra)
    accounts = dict(line.split(" ", 1) for line in
                    (data_dir / "demo-accounts.txt").read_text().splitlines())
    log_path = data_dir / "serve.log"
    ports_file = data_dir / "run" / "ports.json"
    ports_file.unlink(missing_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen([*PLI, "serve", "--data-dir", str(data_dir)],
                                stdout=log, stderr=subprocess.STDOUT,
                                env={**_env(), **(env or {})})
    deadline = time.monotonic() + 60
    while not ports_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"pli serve did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    ports = json.loads(ports_file.read_text())
    return RunningPli(data_dir, ports, accounts, log_path, data_dir / "tls" / "server.crt", proc)


def stop_pli(pli: RunningPli) -> None:
    stop_process(pli.proc, timeout=20)
