"""SMTP ingest benchmark: pli (250 after vault + commit) vs Postfix → Dovecot LMTP.

Alternates peer and pli runs (``--runs`` each, default 3) with the peer kit's
own load generator and the same parameters, then prints the medians and the
ratio against the peer's *stored-in-mailbox* rate (Postfix answers 250 before
storing; pli only after). Also reports pli's peak RSS. Results land in
``bench-results/`` as JSON. Loopback only; every run is bounded in count and time.
``--stock NAME`` (repeatable) runs pli with that ``[tuning]`` switch off, e.g.
``--stock smtp_bulk_data`` for aiosmtpd's own DATA (gateway/base/tuning lists them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
ROOT = HERE.parent.parent
RESULTS = ROOT / "bench-results"


def _extraction(path: Path, users: int) -> None:
    from directory.extraction import COLUMNS

    rows = ["|".join(COLUMNS)]
    for i in range(0, users + 1):  # 0 is the sender: a served-domain sender must be listed
        rpps = f"1099{i:07d}"
        f = [""] * len(COLUMNS)
        address = f"bench{i}@bench.test" if i else "sender@bench.test"
        f[0], f[1], f[2], f[3], f[4] = "PER", address, "8", rpps, "8" + rpps
        f[5], f[6], f[9], f[10] = "1", "1620000018", f"BENCH{i}", "Test"
        f[13], f[14] = "10", "Médecin"
        f[27], f[28], f[29], f[30] = "62000 ARRAS", "62000", "62", "FR"
        rows.append("|".join(f))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _bench_smtp(port: int, out: Path, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(PEERS / "bench_smtp.py"),
        "--port",
        str(port),
        "--rcpt",
        f"bench{{1..{args.users}}}@bench.test",
        "--from",
        "sender@bench.test",
        "--messages",
        str(args.messages),
        "--concurrency",
        str(args.concurrency),
        "--size",
        str(args.size),
        "--json-out",
        str(out),
        *extra,
    ]
    subprocess.run(cmd, check=False, timeout=1800, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _peer_run(i: int, args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix="pli-peer-"))
    env = {
        **os.environ,
        "PEER_CLEAN": "1",
        "PEER_SMTP_PORT": str(args.peer_smtp_port),
        "PEER_IMAP_PORT": str(args.peer_imap_port),
        "PEER_LMTP_PORT": str(args.peer_lmtp_port),
    }
    subprocess.run(
        ["bash", str(PEERS / "start.sh"), str(d)],
        check=True,
        env=env,
        timeout=120,
        stdout=subprocess.DEVNULL,
    )
    try:
        glob = f"{d}/mail/*/Maildir"
        return _bench_smtp(
            args.peer_smtp_port,
            RESULTS / f"peer-smtp-{stamp}_{i}.json",
            args,
            ["--wait-maildir", glob, "--label", "postfix+dovecot"],
        )
    finally:
        subprocess.run(
            ["bash", str(PEERS / "stop.sh"), str(d)],
            check=False,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(d, ignore_errors=True)


def _rss_peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _pli_run(i: int, args: argparse.Namespace, stamp: str) -> tuple[dict[str, Any], int]:
    d = Path(tempfile.mkdtemp(prefix="pli-bench-")) / "var"
    pli = [sys.executable, "-m", "gateway"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLI_")}
    env.update(
        PLI_SMTP__MTA_PORT="0",
        PLI_IMAP__PORT="0",
        PLI_HTTP__PORT="0",
        PLI_SMTP__SUBMISSION_PORT="0",
        PLI_SMTP__SUBMISSION_TLS_PORT="0",
        PLI_LOG__LEVEL="warning",
    )
    env.update({f"PLI_TUNING__{name.upper()}": "false" for name in args.stock})
    subprocess.run(
        [*pli, "init", "--data-dir", str(d), "--domain", "bench.test"],
        check=True,
        env=env,
        timeout=120,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    _extraction(d / "bench.txt", args.users)
    subprocess.run(
        [*pli, "directory", "import", str(d / "bench.txt"), "--data-dir", str(d)],
        check=True,
        env=env,
        timeout=120,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    log = (d / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*pli, "serve", "--data-dir", str(d)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        ports_file = d / "run" / "ports.json"
        deadline = time.monotonic() + 60
        while not ports_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pli serve did not start")
            time.sleep(0.1)
        port = json.loads(ports_file.read_text())["smtp"]
        extra = ["--label", "pli"]
        if args.tls:
            extra += [
                "--starttls",
                "--cafile",
                str(d / "tls" / "server.crt"),
                "--tls-name",
                "localhost",
            ]
        result = _bench_smtp(port, RESULTS / f"pli-smtp-{stamp}_{i}.json", args, extra)
        return result, _rss_peak_kb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(d.parent, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--users", type=int, default=3)
    p.add_argument("--tls", action="store_true", help="pli with STARTTLS (the peer stays clear)")
    p.add_argument(
        "--stock",
        action="append",
        default=[],
        metavar="NAME",
        help="a [tuning] switch to turn off in pli (repeatable)",
    )
    p.add_argument("--peer-smtp-port", type=int, default=12525)
    p.add_argument("--peer-imap-port", type=int, default=11143)
    p.add_argument("--peer-lmtp-port", type=int, default=12424)
    args = p.parse_args()
    RESULTS.mkdir(exist_ok=True)
    subprocess.run(
        ["bash", str(PEERS / "install.sh")], check=True, timeout=900, stdout=subprocess.DEVNULL
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    peers, plis, rss = [], [], []
    for i in range(1, args.runs + 1):
        peers.append(_peer_run(i, args, stamp))
        result, peak = _pli_run(i, args, stamp)
        plis.append(result)
        rss.append(peak)
    peer_stored = statistics.median(r["delivery"]["stored_msgs_per_s"] for r in peers)
    peer_accept = statistics.median(r["msgs_per_s"] for r in peers)
    pli_rate = statistics.median(r["msgs_per_s"] for r in plis)
    summary = {
        "messages": args.messages,
        "size": args.size,
        "concurrency": args.concurrency,
        "runs": args.runs,
        "tls": args.tls,
        "stock": args.stock,
        "peer_stored_msgs_per_s": [r["delivery"]["stored_msgs_per_s"] for r in peers],
        "peer_accepted_msgs_per_s": [r["msgs_per_s"] for r in peers],
        "pli_msgs_per_s": [r["msgs_per_s"] for r in plis],
        "pli_rejected_or_errors": [r["rejected"] + r["errors"] for r in plis],
        "pli_data_p99_ms": [r["latency_ms"]["data"]["p99"] for r in plis],
        "peer_data_p99_ms": [r["latency_ms"]["data"]["p99"] for r in peers],
        "pli_peak_rss_mb": [round(k / 1024, 1) for k in rss],
        "ratio_vs_peer_stored": round(pli_rate / peer_stored, 3),
        "ratio_vs_peer_accepted": round(pli_rate / peer_accept, 3),
    }
    (RESULTS / f"summary-smtp-{stamp}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
