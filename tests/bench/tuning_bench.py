"""Two fenced internals against their stock paths, where no other bench isolates them.

- SQLite statement latency (``[tuning] sqlite_one_trip``): the median time of a
  one-row read and of a durable one-row insert, each on a pooled connection,
  with pli's one-trip dialect and with SQLAlchemy's own, in alternating rounds.
- Idle TLS connections (``[tuning] tls_read_buffer``): an asyncio TLS server in
  a child process, with asyncio's read buffer or pli's 32 KiB, and ``--idle``
  client connections (plain blocking sockets in this process, each having sent
  one byte so the server has read once); the server's RSS growth.

The other items have benches of their own: ``smtp_ingest.py --stock
smtp_bulk_data``, ``vault_bench.py --stock-s3``. Results: docs/benchmarks.md,
"Fenced internals".

    .venv/bin/python tests/bench/tuning_bench.py [--rounds 3] [--reads 2000] [--idle 500]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from gateway.base.db import create_engine  # noqa: E402
from gateway.base.tls import make_dev_certificate, server_context  # noqa: E402
from gateway.base.tuning.tlsbuffer import limit_tls_read_buffer  # noqa: E402

_md = sa.MetaData()
_t = sa.Table(
    "t", _md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(40))
)


async def _sqlite(one_trip: bool, count: int) -> tuple[float, float]:
    """Median ms of a one-row read and of a durable insert."""
    with tempfile.TemporaryDirectory(prefix="pli-tuning-bench-") as d:
        engine = create_engine(f"sqlite+aiosqlite:///{d}/b.db", one_trip=one_trip)
        async with engine.begin() as conn:
            await conn.run_sync(_md.create_all)
            await conn.execute(_t.insert().values(id=1, v="x"))
        reads, inserts = [], []
        for _ in range(count):
            start = time.perf_counter()
            async with engine.connect() as conn:
                (await conn.execute(sa.select(_t).where(_t.c.id == 1))).one()
            reads.append(time.perf_counter() - start)
            start = time.perf_counter()
            async with engine.begin() as conn:
                await conn.execute(_t.insert().values(v="y"))
            inserts.append(time.perf_counter() - start)
        await engine.dispose()
    return statistics.median(reads) * 1e3, statistics.median(inserts) * 1e3


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _serve(limited: bool, certs: Path) -> None:
    """The child: a TLS server whose connections wait for their client to close."""
    if limited:
        limit_tls_read_buffer()

    async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    async def main() -> None:
        context = server_context(certs / "server.crt", certs / "server.key")
        server = await asyncio.start_server(idle, "127.0.0.1", 0, ssl=context, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())


def _tls(limited: bool, idle: int, certs: Path) -> float:
    """KiB of server RSS per idle TLS connection."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "limited" if limited else "stock", str(certs)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        time.sleep(0.3)
        before = _rss_kib(child.pid)
        client = ssl.create_default_context(cafile=str(certs / "server.crt"))
        sockets = []
        for _ in range(idle):
            conn = client.wrap_socket(
                socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"
            )
            conn.sendall(b"x")
            sockets.append(conn)
        time.sleep(1.0)
        grown = _rss_kib(child.pid) - before
        for conn in sockets:
            conn.close()
        return grown / idle
    finally:
        child.terminate()
        child.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reads", type=int, default=2000, help="statements of each kind per round")
    ap.add_argument("--idle", type=int, default=500, help="idle TLS connections per round")
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        _serve(args.serve[0] == "limited", Path(args.serve[1]))
        return 0
    for rnd in range(1, args.rounds + 1):
        for one_trip in (True, False):
            read, insert = asyncio.run(_sqlite(one_trip, args.reads))
            print(
                f"round {rnd} SQLite {'one-trip' if one_trip else 'stock   '}: "
                f"one-row read {read:.3f} ms, durable insert {insert:.3f} ms"
            )
    with tempfile.TemporaryDirectory(prefix="pli-tuning-bench-") as d:
        make_dev_certificate(Path(d), ["localhost"])
        for rnd in range(1, args.rounds + 1):
            for limited in (True, False):
                each = _tls(limited, args.idle, Path(d))
                print(
                    f"round {rnd} TLS {'32 KiB' if limited else 'stock '}: {args.idle} idle "
                    f"connections, server RSS {each * args.idle / 1024:.1f} MiB "
                    f"({each:.0f} KiB each)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
