"""IMAP benchmark: pli vs Dovecot over the same load, and pli's RSS with idle sessions.

Both servers get ``--messages`` messages of ``--size`` bytes in one user's
INBOX (through IMAP APPEND), then ``peers/bench_imap.py`` runs the same
sessions against each (STARTTLS, LOGIN, SELECT, FETCH 1:* (FLAGS UID
RFC822.SIZE), ``--sample`` random BODY.PEEK[] fetches, LOGOUT) and the ratio
pli/Dovecot of sessions/s and bodies/s is reported (issue goal ≥ 0.5, project
goal ≥ 1.0). Then ``--idle`` authenticated connections are opened to pli and
left idle, and the server's RSS is read from /proc (goal ≤ 200 MB). Results
land in ``bench-results/imap-<timestamp>.json``.

    .venv/bin/python tests/bench/imap_bench.py [--messages 1000] [--size 100000]
        [--seconds 20] [--idle 500] [--no-peer]
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.gateway.running import RunningPli, start_pli, stop_pli  # noqa: E402  (path above)

PEERS = Path(__file__).resolve().parent / "peers"
RESULTS = ROOT / "bench-results"
USER = "sophie.bernard@ch-arras.mssante.fr"


def _message(n: int, size: int) -> bytes:
    head = (
        f"From: bench@ch-arras.mssante.fr\r\nTo: {USER}\r\nSubject: bench {n}\r\n"
        f"Message-ID: <bench-{n}@pli>\r\n\r\n"
    ).encode()
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def _seed(port: int, user: str, password: str, ctx: ssl.SSLContext, n: int, size: int) -> None:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=120)
    client.starttls(ssl_context=ctx)
    client.login(user, password)
    for i in range(n):
        typ, _ = client.append("INBOX", "", None, _message(i, size))
        assert typ == "OK"
    client.logout()


def _bench(
    port: int, user: str, password: str, cafile: Path, args: argparse.Namespace, label: str
) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [
        sys.executable,
        str(PEERS / "bench_imap.py"),
        "--port",
        str(port),
        "--users",
        user,
        f"--password={password}",  # one argument: a password may start with "-"
        "--starttls",
        "--cafile",
        str(cafile),
        "--tls-name",
        "localhost",
        "--concurrency",
        str(args.concurrency),
        "--seconds",
        str(args.seconds),
        "--sample",
        "10",
        "--label",
        label,
        "--json-out",
        str(out),
    ]
    subprocess.run(cmd, check=True, timeout=args.seconds + 300, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _idle_sessions(
    port: int, password: str, ctx: ssl.SSLContext, count: int
) -> list[asyncio.StreamWriter]:
    async def one() -> asyncio.StreamWriter:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        await r.readline()
        w.write(b"s STARTTLS\r\n")
        await r.readline()
        await w.start_tls(ctx)
        w.write(f'l LOGIN "{USER}" "{password}"\r\n'.encode())
        await w.drain()
        while not (await r.readline()).startswith(b"l "):
            pass
        w.write(b"x SELECT INBOX\r\n")
        while not (await r.readline()).startswith(b"x "):
            pass
        return w

    writers: list[asyncio.StreamWriter] = []
    for start in range(0, count, 25):  # logins hash passwords: open in small waves
        writers += await asyncio.gather(*(one() for _ in range(min(25, count - start))))
    return writers


def _pli(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="pli-imap-bench-"))
    pli: RunningPli = start_pli(base / "var")
    try:
        password = pli.accounts[USER]
        ctx = ssl.create_default_context(cafile=str(pli.cafile))
        ctx.check_hostname = False
        t0 = time.monotonic()
        _seed(pli.ports["imap"], USER, password, ctx, args.messages, args.size)
        seeded = time.monotonic() - t0
        result = _bench(pli.ports["imap"], USER, password, pli.cafile, args, "pli")
        result["seed_seconds"] = round(seeded, 2)
        if args.idle:
            before = _rss_kb(pli.proc.pid)
            loop = asyncio.new_event_loop()
            writers = loop.run_until_complete(
                _idle_sessions(pli.ports["imap"], password, ctx, args.idle)
            )
            time.sleep(1)
            result["idle"] = {
                "connections": len(writers),
                "rss_before_kb": before,
                "rss_kb": _rss_kb(pli.proc.pid),
            }
            for w in writers:
                w.close()
            loop.close()
        return result
    finally:
        stop_pli(pli)
        shutil.rmtree(base, ignore_errors=True)


def _dovecot(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix="pli-peer-"))
    # Both servers check an argon2id hash at each login (pli stores nothing else);
    # the peer kit's PLAIN default would time password storage pli refuses to do.
    env = {
        **os.environ,
        "PEER_CLEAN": "1",
        "PEER_TLS": "1",
        "PEER_IMAP_PORT": str(args.peer_imap_port),
        "PEER_PASS_SCHEME": os.environ.get("PEER_PASS_SCHEME", "ARGON2ID"),
    }
    subprocess.run(
        ["bash", str(PEERS / "start.sh"), str(d)],
        check=True,
        env=env,
        timeout=120,
        stdout=subprocess.DEVNULL,
    )
    try:
        cafile = d / "tls" / "cert.pem"
        ctx = ssl.create_default_context(cafile=str(cafile))
        ctx.check_hostname = False
        _seed(args.peer_imap_port, "bench1@bench.test", "bench", ctx, args.messages, args.size)
        return _bench(args.peer_imap_port, "bench1@bench.test", "bench", cafile, args, "dovecot")
    finally:
        subprocess.run(
            ["bash", str(PEERS / "stop.sh"), str(d)],
            check=False,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(d, ignore_errors=True)


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("sessions_per_s", "bodies_per_s")
    out = {k: statistics.median(r[k] for r in runs) for k in keys if all(k in r for r in runs)}
    out["errors"] = sum(int(r.get("errors") or 0) for r in runs)
    idle = [r["idle"] for r in runs if "idle" in r]
    if idle:
        out["idle"] = {
            "connections": idle[0]["connections"],
            "rss_before_kb": statistics.median(i["rss_before_kb"] for i in idle),
            "rss_kb": statistics.median(i["rss_kb"] for i in idle),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--idle", type=int, default=500)
    p.add_argument("--runs", type=int, default=3, help="medians of this many runs")
    p.add_argument("--no-peer", action="store_true", help="skip Dovecot")
    p.add_argument("--peer-imap-port", type=int, default=11143)
    args = p.parse_args()
    peer = not args.no_peer
    if peer and not shutil.which("dovecot"):  # the peer kit installs Postfix + Dovecot
        subprocess.run(["bash", str(PEERS / "install.sh")], check=True, timeout=900)
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for _ in range(args.runs):  # alternating, so that load drifts hit both alike
        ours.append(_pli(args))
        if peer:
            theirs.append(_dovecot(args))
    report: dict[str, Any] = {
        "messages": args.messages,
        "size": args.size,
        "runs": args.runs,
        "pli": _median_of(ours),
        "per_run": {"pli": ours},
    }
    if peer:
        report["dovecot"] = _median_of(theirs)
        report["per_run"]["dovecot"] = theirs
        a, b = report["pli"], report["dovecot"]
        report["ratio"] = {
            key: round(a[key] / b[key], 3) if b.get(key) else None
            for key in ("sessions_per_s", "bodies_per_s")
        }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"imap-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "per_run"}, indent=2))


if __name__ == "__main__":
    main()
