"""Vault benchmark: pli's encrypted put/get over S3 vs the raw minio client, audit appends, RSS.

Against one S3 server (moto's server mode, started here on loopback), in the
same run: the time to put and get objects of 100 KB and 10 MB through pli's
vault (AES-256-GCM chunks, digest, integrity check on read) divided by the
time of raw ``minio`` put/get of the same bytes (goal ≤ 1.2), in alternating
rounds. A pli put counts the INSERT of its metadata row: ingest, APPEND and the
API record the row in the transaction that commits the message anyway, so
that INSERT is what the vault adds to a message's path. The ratios of the blob
alone and of a put with a durable commit of its own are reported beside. The
process runs with ``pli serve``'s allocator settings (gateway/base/tuning/malloc.py), which
make every large buffer fresh pages, for pli and the raw client alike;
``--allocator default`` keeps glibc's, and ``--stock-s3`` keeps pli's S3 store to
minio's public calls (``[tuning] s3_direct = false``, see vault/s3_direct.py). Batched audit
appends per second on SQLite (goal ≥ 20,000/s); and the peak RSS of a child
process streaming a 1 GB object in and out of the vault (goal ≤ 100 MB).
Medians of ``--runs`` (default 3) because the 2-core VM is shared and noisy.
Results land in ``bench-results/vault-<timestamp>.json``.

    .venv/bin/python tests/bench/vault_bench.py [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from minio import Minio  # noqa: E402

from gateway.base.db import create_engine  # noqa: E402
from gateway.base.tuning.malloc import tune_allocator  # noqa: E402
from gateway.migrations import migrate  # noqa: E402
from tests.support.moto_s3 import ACCESS_KEY, SECRET_KEY, MotoS3Server  # noqa: E402
from vault import audit  # noqa: E402
from vault.keys import KeyFileProvider, create_kek_file  # noqa: E402
from vault.s3 import S3BlobStore  # noqa: E402
from vault.service import Vault  # noqa: E402

RESULTS = ROOT / "bench-results"
MB = 1024 * 1024


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _pli_vault(
    endpoint: str, tmp: Path, bucket: str, direct: bool
) -> tuple[Vault, S3BlobStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp / f'{bucket}.db'}")
    await migrate(engine)
    kek = tmp / f"{bucket}.kek"
    create_kek_file(kek)
    store = S3BlobStore(
        endpoint, ACCESS_KEY, SECRET_KEY, bucket, secure=False, region="us-east-1", direct=direct
    )  # default part size
    await store.ensure_bucket()
    return Vault(engine, store, KeyFileProvider.from_file(kek), 64 * 1024), store


def _raw_client(server: MotoS3Server, bucket: str) -> Minio:
    client = Minio(
        server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        secure=False,
        region="us-east-1",
    )
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    return client


def _raw_put(client: Minio, bucket: str, data: bytes, names: list[str]) -> float:
    t = time.perf_counter()
    for name in names:
        client.put_object(bucket, name, io.BytesIO(data), len(data))
    return time.perf_counter() - t


def _raw_get(client: Minio, bucket: str, size: int, names: list[str]) -> float:
    t = time.perf_counter()
    for name in names:
        resp = client.get_object(bucket, name)
        try:
            got = resp.read()
        finally:
            resp.close()
            resp.release_conn()
        assert len(got) == size
    return time.perf_counter() - t


async def _pli_put(vault: Vault, data: bytes, count: int) -> tuple[float, float, float, list[str]]:
    """Seconds for the puts alone, with their row's INSERT, and with a commit of their own."""
    names, blob_only, recorded, committed = [], 0.0, 0.0, 0.0
    for _ in range(count):
        t = time.perf_counter()
        obj = await vault.put(data)
        blob = time.perf_counter() - t
        async with vault._engine.begin() as conn:  # the caller's transaction, as in ingest
            t_insert = time.perf_counter()
            await vault.record(conn, obj)
            insert = time.perf_counter() - t_insert
        committed += time.perf_counter() - t
        blob_only += blob
        recorded += blob + insert
        names.append(obj.name)
    return blob_only, recorded, committed, names


async def _pli_get(vault: Vault, size: int, names: list[str]) -> float:
    t = time.perf_counter()
    for name in names:
        assert len(await vault.get(name)) == size
    return time.perf_counter() - t


async def _sizes(
    server: MotoS3Server, tmp: Path, run: int, quick: bool, direct: bool
) -> dict[str, float]:
    """pli and raw minio in alternating rounds, so that a noisy neighbour (the VM is
    shared) or a server slowing as its buckets fill weighs on both sides alike."""
    out: dict[str, float] = {}
    rounds = 2 if quick else 4
    cases = {"100KB": (100 * 1000, 50 if quick else 200), "10MB": (10 * MB, 4 if quick else 24)}
    for label, (size, count) in cases.items():
        data = os.urandom(size)
        vault, store = await _pli_vault(server.endpoint, tmp, f"pli-{label.lower()}-{run}", direct)
        bucket = f"raw-{label.lower()}-{run}"
        client = await asyncio.to_thread(_raw_client, server, bucket)
        t = {
            "pli_blob_put": 0.0,
            "pli_put": 0.0,
            "pli_committed_put": 0.0,
            "pli_get": 0.0,
            "raw_put": 0.0,
            "raw_get": 0.0,
        }
        for r in range(rounds):
            blob, put, committed, names = await _pli_put(vault, data, count // rounds)
            raw_names = [f"raw-{r}-{i}" for i in range(count // rounds)]
            t["pli_blob_put"] += blob
            t["pli_put"] += put
            t["pli_committed_put"] += committed
            t["raw_put"] += await asyncio.to_thread(_raw_put, client, bucket, data, raw_names)
            t["pli_get"] += await _pli_get(vault, size, names)
            t["raw_get"] += await asyncio.to_thread(_raw_get, client, bucket, size, raw_names)
        await store.aclose()
        for key, seconds in t.items():
            out[f"{label}_{key}_s"] = seconds
        out[f"{label}_put_ratio"] = t["pli_put"] / t["raw_put"]
        out[f"{label}_blob_put_ratio"] = t["pli_blob_put"] / t["raw_put"]
        out[f"{label}_committed_put_ratio"] = t["pli_committed_put"] / t["raw_put"]
        out[f"{label}_get_ratio"] = t["pli_get"] / t["raw_get"]
    return out


async def _audit_rate(tmp: Path, run: int, events: int) -> float:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp / f'audit-{run}.db'}")
    await migrate(engine)
    batch = [
        audit.AuditEvent(
            action="message.delivered", actor="a@x.fr", mailbox="b@y.fr", msg_id="0123456789abcdef"
        )
    ] * 1000
    t = time.perf_counter()
    for _ in range(events // len(batch)):
        async with engine.begin() as conn:
            await audit.append_many(conn, batch)
    rate = events / (time.perf_counter() - t)
    assert (await audit.verify(engine)).ok
    await engine.dispose()
    return rate


async def _stream_child(endpoint: str, tmp: Path, size_mb: int, direct: bool) -> None:
    """Runs in a child process: put then read back ``size_mb`` MiB; print peak RSS."""
    vault, store = await _pli_vault(endpoint, tmp, "stream", direct)
    before = _hwm_mb()

    async def source() -> AsyncIterator[bytes]:
        block = os.urandom(MB)
        for _ in range(size_mb):
            yield block

    t = time.perf_counter()
    obj = await vault.put(source())
    async with vault._engine.begin() as conn:
        await vault.record(conn, obj)
    put_s = time.perf_counter() - t
    t, read = time.perf_counter(), 0
    async for piece in vault.stream(obj.name):
        read += len(piece)
    assert read == size_mb * MB
    print(
        json.dumps(
            {
                "rss_before_mb": before,
                "peak_rss_mb": _hwm_mb(),
                "put_s": put_s,
                "get_s": time.perf_counter() - t,
            }
        )
    )
    await store.aclose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes, one run")
    ap.add_argument("--stream-mb", type=int, default=1024)
    ap.add_argument(
        "--allocator",
        choices=("server", "default"),
        default="server",
        help="pli serve's malloc settings (default) or glibc's own",
    )
    ap.add_argument(
        "--stock-s3",
        action="store_true",
        help="minio's public calls only (vault/s3_direct.py switched off)",
    )
    ap.add_argument("--child", nargs=2, metavar=("ENDPOINT", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.allocator == "server":
        tune_allocator()  # before any thread, as `pli serve` does
    if args.child:
        asyncio.run(
            _stream_child(args.child[0], Path(args.child[1]), args.stream_mb, not args.stock_s3)
        )
        return 0
    runs = 1 if args.quick else args.runs
    stream_mb = 64 if args.quick else args.stream_mb
    per_run: list[dict[str, float]] = []
    server = MotoS3Server()
    server.start()
    try:
        for run in range(runs):
            with tempfile.TemporaryDirectory(prefix="pli-vault-bench-") as d:
                tmp = Path(d)
                result = asyncio.run(_sizes(server, tmp, run, args.quick, not args.stock_s3))
                result["audit_appends_per_s"] = asyncio.run(
                    _audit_rate(tmp, run, 20_000 if args.quick else 100_000)
                )
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        server.endpoint,
                        d,
                        "--stream-mb",
                        str(stream_mb),
                        "--allocator",
                        args.allocator,
                        *(["--stock-s3"] if args.stock_s3 else []),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=1800,
                    check=True,
                )
                streamed = json.loads(child.stdout.strip().splitlines()[-1])
                result.update({f"stream_{k}": v for k, v in streamed.items()})
                per_run.append(result)
                print(
                    f"run {run + 1}: " + ", ".join(f"{k}={v:.3g}" for k, v in result.items()),
                    file=sys.stderr,
                )
    finally:
        server.stop()
    median = {k: statistics.median(r[k] for r in per_run) for k in per_run[0]}
    report = {
        "runs": runs,
        "stream_mb": stream_mb,
        "allocator": args.allocator,
        "s3": "stock" if args.stock_s3 else "direct",
        "median": median,
        "per_run": per_run,
        "goals": {
            "put_get_ratio_max": 1.2,
            "audit_appends_per_s_min": 20_000,
            "stream_peak_rss_mb_max": 100,
        },
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"vault-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"vault bench: medians of {runs} run(s); S3 = moto server mode on loopback; "
        f"{args.allocator} allocator; {'stock' if args.stock_s3 else 'direct'} S3 calls"
    )
    for label in ("100KB", "10MB"):
        print(
            f"  {label:6} put pli/raw {median[f'{label}_put_ratio']:.2f}  "
            f"get pli/raw {median[f'{label}_get_ratio']:.2f}   (goal <= 1.2; put: blob and "
            f"row INSERT; blob alone {median[f'{label}_blob_put_ratio']:.2f}, with a commit "
            f"of its own {median[f'{label}_committed_put_ratio']:.2f})"
        )
    print(
        f"  audit appends (batches of 1000, SQLite) {median['audit_appends_per_s']:,.0f}/s "
        "(goal >= 20,000/s)"
    )
    print(
        f"  streaming {stream_mb} MiB in and out: peak RSS {median['stream_peak_rss_mb']:.0f} MB"
        f" (goal <= 100 MB), put {median['stream_put_s']:.1f} s, "
        f"get {median['stream_get_s']:.1f} s"
    )
    print(f"  results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
