"""A real S3 endpoint for the tests: moto's server mode as a subprocess on loopback.

A separate process (not moto's in-process mocks nor its threaded server) so
the client under test goes through real sockets, and so a test can stop the
server (an outage) or freeze it with SIGSTOP (a hung server) and start it again
on the same port. moto keeps its state in memory: a restart begins with no
bucket. It accepts any credentials; the fixed ones below only make the client
sign its requests.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.servers import free_port, stop_process

__all__ = ["ACCESS_KEY", "SECRET_KEY", "MotoS3Server"]

ACCESS_KEY = "pli-test-access"
SECRET_KEY = "pli-test-secret-key"
_HINT = "moto's server mode is missing: pip install 'moto[server]'"


class MotoS3Server:
    """``python -m moto.server`` on 127.0.0.1; ``endpoint`` is what an S3 client takes."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self._proc: subprocess.Popen[bytes] | None = None
        fd, log = tempfile.mkstemp(prefix="pli-moto-", suffix=".log")
        os.close(fd)
        self._log = Path(log)

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/moto-api/data.json")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def start(self, timeout: float = 30.0) -> None:
        if self._proc is not None:
            raise RuntimeError("moto server already running")
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._log.read_text(errors="replace")[-2000:]
                self._proc = None
                raise RuntimeError(f"moto server exited at start ({_HINT}):\n{tail}")
            if self._answers():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint} within {timeout}s")

    def stop(self) -> None:
        """Terminate the server (kill it if it lingers); its port refuses connections after."""
        proc, self._proc = self._proc, None
        stop_process(proc)

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, nothing answers (a hung server)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        self._log.unlink(missing_ok=True)

    def __enter__(self) -> MotoS3Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
