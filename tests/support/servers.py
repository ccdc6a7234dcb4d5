"""What every test server helper needs: a free loopback port, and a clean stop."""

from __future__ import annotations

import itertools
import os
import random
import socket
import subprocess

__all__ = ["free_port", "stop_process"]

# Ports handed out for servers the tests start on a port chosen in advance (PostgreSQL,
# slapd, S3, a peer that must come back on the same port). Below the kernel's ephemeral
# range (32768-60999 by default), so that no outgoing connection holds one by the time
# the server binds it, and one block of 1,000 per pytest-xdist worker (gw0, gw1, ...), so
# that two workers never pick the same one between checking it and binding it.
_FIRST, _BLOCK, _BLOCKS = 20000, 1000, 12
_counter = itertools.count(random.randrange(_BLOCK))  # another run on the machine: elsewhere


def _block() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    return _FIRST + (index % _BLOCKS) * _BLOCK


def free_port() -> int:
    """A loopback TCP port of this worker's block that nobody listens on now (closed again:
    connections are refused)."""
    first = _block()
    for _ in range(_BLOCK):
        port = first + next(_counter) % _BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering in TIME_WAIT): the next one
            return port
    raise RuntimeError(f"no free port in {first}-{first + _BLOCK - 1}")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """Terminate a server process; kill it if it lingers."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
