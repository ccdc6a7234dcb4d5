"""Directory benchmark: SQLite import at 1M rows, cached lookups, uncached LDAP lookups.

Three measurements of the ``directory`` package, each repeated ``--runs`` times
(default 3):

1. SQLite import of a generated national extraction (default 1,000,000 rows,
   ``tests/fixtures/directory/generate_extraction.py --seed 1``) into a fresh
   database, in a child process of its own so that its peak RSS is the
   import's; then a re-import of the same file (every row unchanged) and one
   word search (``SqlDirectory.search("dupont")``) over the result.
2. Lookups through ``CachedDirectory(SqlDirectory(engine))`` over that
   database, in the same child: K addresses of the file warm the cache, then
   ``--lookups`` resolves drawn from them run one after the other in one event
   loop (lookups/s, p50/p99 per call).
3. Uncached ``LdapDirectory.resolve`` against a real slapd (``tests/support``),
   after loading a smaller extraction (``--seed 2``) with
   ``import_extraction_ldap``, issued by ``--ldap-concurrency`` tasks; the peer
   baseline is raw python-ldap ``search_ext_s`` by mail on one connection in
   a plain loop, over the same addresses and in the same run.

The figures are medians of the runs because the reference machine is a noisy
2-core VM: one run can lose seconds to a neighbour, and the median of a few
runs is stable where the mean is not (every run's figure is kept in the JSON).
Results land in ``bench-results/directory-<timestamp>.json``. Loopback only;
every subprocess and every measured part is bounded in count and time.

    .venv/bin/python tests/bench/directory_bench.py            # full: a few minutes
    .venv/bin/python tests/bench/directory_bench.py --quick    # smoke test: < 1 min
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from directory.ldap import LdapDirectory

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = ROOT / "bench-results"
GENERATOR = ROOT / "tests" / "fixtures" / "directory" / "generate_extraction.py"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEARCH_WORD = "dupont"
GOALS = {
    "import_s": 60.0,
    "peak_rss_mb": 200.0,
    "cached_lookups_per_s": 20_000.0,
    "ldap_lookups_per_s": 2_000.0,
}
QUICK = {
    "rows": 50_000,
    "lookups": 20_000,
    "lookup_keys": 10_000,
    "ldap_rows": 5_000,
    "ldap_lookups": 5_000,
    "runs": 1,
}
DEFAULTS = {
    "rows": 1_000_000,
    "lookups": 200_000,
    "lookup_keys": 10_000,
    "ldap_rows": 20_000,
    "ldap_lookups": 20_000,
    "runs": 3,
}
LDAP_WARMUP = 500  # untimed lookups first: pool connections opened and bound


# --- helpers ---------------------------------------------------------------------------


def _maxrss_mb() -> float:
    """getrusage's ru_maxrss (KiB on Linux), kept in the JSON for comparison only.

    Linux carries it over execve from the forked image, i.e. the parent's RSS at
    spawn time: a child's ru_maxrss is never below its parent's size.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mb() -> float:
    """Peak RSS of this process image since its exec (VmHWM), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _maxrss_mb()  # no /proc: the best there is


def _pct(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def _latency_summary(ns: list[int], elapsed_s: float, unit: float) -> dict[str, float]:
    """Rate and p50/p99 (in ``unit`` nanoseconds) of per-call latencies."""
    ns.sort()
    return {
        "n": len(ns),
        "elapsed_s": round(elapsed_s, 3),
        "per_s": round(len(ns) / elapsed_s, 1) if elapsed_s > 0 else math.nan,
        "p50": round(_pct(ns, 0.50) / unit, 3),
        "p99": round(_pct(ns, 0.99) / unit, 3),
        "max": round(ns[-1] / unit, 3) if ns else math.nan,
    }


def _generate(rows: int, seed: int, out: Path, timeout: float) -> float:
    """Write an extraction with the fixture generator; return the seconds it took."""
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            "--rows",
            str(rows),
            "--seed",
            str(seed),
            "--out",
            str(out),
        ],
        check=True,
        timeout=timeout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def _addresses(path: Path) -> Iterator[str]:
    """Column 2 (the mailbox address) of every data line of an extraction."""
    with path.open("rb") as fh:
        next(fh, None)  # header
        for line in fh:
            parts = line.split(b"|", 2)
            if len(parts) > 1 and parts[1]:
                yield parts[1].decode("utf-8")


def _sample(items: Iterator[str], k: int, rng: random.Random) -> list[str]:
    """``k`` items drawn uniformly without replacement, in one pass (reservoir)."""
    out: list[str] = []
    for n, item in enumerate(items):
        if n < k:
            out.append(item)
        elif (j := rng.randrange(n + 1)) < k:
            out[j] = item
    return out


# --- parts 1 and 2: SQLite import, search, cached lookups (child process) --------------


async def _sql_child(
    extraction: Path, db: Path, keys_file: Path, lookups: int, seed: int
) -> dict[str, Any]:
    """One run of parts 1 and 2 in this (fresh) process; the figures as a dict."""
    from directory.cache import CachedDirectory
    from directory.sql import SqlDirectory
    from directory.sql_import import import_extraction
    from gateway.base import db as gdb
    from gateway.migrations import migrate

    engine = gdb.create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        await migrate(engine)
        out: dict[str, Any] = {"rss_before_import_mb": round(_peak_rss_mb(), 1)}

        t0 = time.perf_counter()
        report = await import_extraction(engine, extraction)
        out["import_s"] = round(time.perf_counter() - t0, 3)
        out["peak_rss_import_mb"] = round(_peak_rss_mb(), 1)
        out["ru_maxrss_import_mb"] = round(_maxrss_mb(), 1)
        out["import_report"] = {
            k: getattr(report, k)
            for k in ("rows", "added", "changed", "removed", "unchanged", "error_count", "aborted")
        }
        out["db_mb"] = round(
            sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 2**20, 1
        )

        t0 = time.perf_counter()
        report = await import_extraction(engine, extraction)
        out["reimport_s"] = round(time.perf_counter() - t0, 3)
        out["peak_rss_reimport_mb"] = round(_peak_rss_mb(), 1)
        out["reimport_report"] = {
            k: getattr(report, k)
            for k in ("rows", "added", "changed", "removed", "unchanged", "error_count", "aborted")
        }

        sql = SqlDirectory(engine)
        t0 = time.perf_counter()
        found = await sql.search(SEARCH_WORD)
        out["search_s"] = round(time.perf_counter() - t0, 4)
        out["search_results"] = len(found)

        # Part 2: the cache as the gateway builds it (gateway/app/services.py), sized for the keys.
        keys: list[str] = json.loads(keys_file.read_text())
        cached = CachedDirectory(
            sql, max_entries=max(20_000, 2 * len(keys)), generation=sql.generation
        )
        t0 = time.perf_counter()
        not_found = sum([await cached.resolve(k) is None for k in keys])
        out["cache_warm_s"] = round(time.perf_counter() - t0, 3)
        out["cache_keys"], out["cache_warm_not_found"] = len(keys), not_found
        draws = random.Random(seed).choices(keys, k=lookups)
        lat = [0] * lookups
        hits_before, misses_before = cached.stats.hits, cached.stats.misses
        clock = time.perf_counter_ns
        t_start = clock()
        for i, address in enumerate(draws):
            t0 = clock()
            await cached.resolve(address)
            lat[i] = clock() - t0
        elapsed = (clock() - t_start) / 1e9
        out["cached"] = _latency_summary(lat, elapsed, 1e3)  # microseconds
        out["cached"]["hits"] = cached.stats.hits - hits_before
        out["cached"]["misses"] = cached.stats.misses - misses_before
        return out
    finally:
        await engine.dispose()


def _sql_run(
    i: int, extraction: Path, work: Path, keys_file: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Parts 1 and 2 in a child process on a fresh database; its JSON answer."""
    db = work / f"directory-run{i}.db"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child-sql",
        str(extraction),
        str(db),
        str(keys_file),
        str(args.lookups),
        str(args.seed + i),
    ]
    try:
        proc = subprocess.run(
            cmd, check=False, timeout=args.timeout, capture_output=True, text=True, cwd=ROOT
        )
        if proc.returncode != 0:
            raise RuntimeError(f"SQL run {i} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result
    finally:
        for p in work.glob(db.name + "*"):
            p.unlink(missing_ok=True)


# --- part 3: LDAP ----------------------------------------------------------------------


def _make_base(url: str, base: str) -> None:
    """The ``ou=`` entry the benchmark's directory lives under (as tests' new_subtree)."""
    import ldap

    from tests.support.slapd import ROOT_DN, ROOT_PW

    conn = ldap.initialize(url)
    try:
        conn.simple_bind_s(ROOT_DN, ROOT_PW)
        conn.add_s(
            base,
            [("objectClass", [b"organizationalUnit"]), ("ou", [base.split(",")[0][3:].encode()])],
        )
    finally:
        conn.unbind_s()


async def _concurrent_lookups(
    resolve: Callable[[str], Any], addresses: Sequence[str], concurrency: int
) -> tuple[list[int], float, int]:
    """``concurrency`` tasks resolving ``addresses`` in turn; (latencies ns, s, misses)."""
    feed: Iterator[str] = iter(addresses)
    lat: list[int] = []
    missing = 0
    clock = time.perf_counter_ns

    async def worker() -> None:
        nonlocal missing
        for address in feed:  # one shared iterator: each address is taken once
            t0 = clock()
            entry = await resolve(address)
            lat.append(clock() - t0)
            missing += entry is None

    t_start = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, (clock() - t_start) / 1e9, missing


def _ldap_directory(url: str, base: str, concurrency: int) -> LdapDirectory:
    from directory.ldap import LdapConfig, LdapDirectory
    from tests.support.slapd import ROOT_DN, ROOT_PW

    return LdapDirectory(
        LdapConfig(
            url=url,
            base_dn=base,
            bind_dn=ROOT_DN,
            bind_password=ROOT_PW,
            pool_size=min(concurrency, 8),
        )
    )


async def _pli_ldap_load(url: str, base: str, extraction: Path, concurrency: int) -> dict[str, Any]:
    """Load the extraction into slapd with import_extraction_ldap, timed."""
    from directory.ldap_import import import_extraction_ldap

    ldapdir = _ldap_directory(url, base, concurrency)
    try:
        t0 = time.perf_counter()
        report = await import_extraction_ldap(ldapdir, extraction)
        load_s = time.perf_counter() - t0
    finally:
        await ldapdir.aclose()
    if report.aborted or report.added != report.rows:
        raise RuntimeError(f"LDAP load went wrong: {report.summary()}")
    return {
        "load_s": round(load_s, 3),
        "load_rows": report.rows,
        "load_rows_per_s": round(report.rows / load_s, 1),
    }


async def _pli_ldap_lookups(
    url: str, base: str, addresses: list[str], concurrency: int
) -> dict[str, Any]:
    """Uncached LdapDirectory.resolve by ``concurrency`` tasks (after an untimed warm-up)."""
    ldapdir = _ldap_directory(url, base, concurrency)
    try:
        await _concurrent_lookups(ldapdir.resolve, addresses[:LDAP_WARMUP], concurrency)
        lat, elapsed, missing = await _concurrent_lookups(ldapdir.resolve, addresses, concurrency)
    finally:
        await ldapdir.aclose()
    return {**_latency_summary(lat, elapsed, 1e6), "not_found": missing}


def _raw_ldap(url: str, base: str, addresses: list[str], timeout: float) -> dict[str, Any]:
    """Peer baseline: python-ldap search_ext_s by mail, one connection, one thread."""
    import ldap
    from ldap.filter import escape_filter_chars

    from directory.ldap import ATTRIBUTES, CERT_ATTR
    from tests.support.slapd import ROOT_DN, ROOT_PW

    attrs = [*ATTRIBUTES.values(), "pliListeRouge", CERT_ATTR]  # what pli's resolve reads
    conn = ldap.initialize(url)
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5.0)
    conn.simple_bind_s(ROOT_DN, ROOT_PW)
    clock = time.perf_counter_ns
    deadline = time.monotonic() + timeout

    def one(address: str) -> int:
        flt = f"(&(objectClass=pliMailbox)(mail={escape_filter_chars(address)}))"
        return len(
            conn.search_ext_s(base, ldap.SCOPE_SUBTREE, flt, attrs, sizelimit=2, timeout=5.0)
        )

    try:
        for address in addresses[:LDAP_WARMUP]:
            one(address)
        lat = [0] * len(addresses)
        missing = 0
        t_start = clock()
        for i, address in enumerate(addresses):
            t0 = clock()
            missing += one(address) == 0
            lat[i] = clock() - t0
            if i % 1000 == 0 and time.monotonic() > deadline:
                raise TimeoutError("raw python-ldap lookups ran past --timeout")
        elapsed = (clock() - t_start) / 1e9
    finally:
        conn.unbind_s()
    return {**_latency_summary(lat, elapsed, 1e6), "not_found": missing}


def _ldap_run(
    i: int, extraction: Path, addresses: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Part 3 on a fresh slapd: load, then pli's and raw lookups (order alternates by run)."""
    from tests.support.slapd import BASE_DN, Slapd

    tmp = Path(tempfile.mkdtemp(prefix="pli-dirbench-slapd-"))
    server = Slapd(tmp)
    base = f"ou=bench,{BASE_DN}"
    conc = args.ldap_concurrency

    def pli() -> None:
        out["lookups"] = asyncio.run(
            asyncio.wait_for(
                _pli_ldap_lookups(server.url, base, addresses, conc), timeout=args.timeout
            )
        )

    def raw() -> None:
        out["raw"] = _raw_ldap(server.url, base, addresses, args.timeout)

    try:
        server.setup()
        server.start()
        _make_base(server.url, base)
        out = asyncio.run(
            asyncio.wait_for(
                _pli_ldap_load(server.url, base, extraction, conc), timeout=args.timeout
            )
        )
        order = (pli, raw) if i % 2 else (raw, pli)  # neither always meets a fresher server
        for step in order:
            step()
        out["order"] = ",".join(f.__name__ for f in order)
        return out
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# --- report ----------------------------------------------------------------------------


def _med(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def _table(summary: dict[str, Any]) -> str:
    m, g = summary["median"], GOALS

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    rows = [
        (
            f"SQLite import ({summary['rows']:,} rows)",
            f"{m['import_s']:.1f} s",
            f"<= {g['import_s']:.0f} s",
            verdict(m["import_s"] <= g["import_s"]),
        ),
        ("SQLite re-import (all unchanged)", f"{m['reimport_s']:.1f} s", "", ""),
        (
            "import peak RSS (child process)",
            f"{m['peak_rss_import_mb']:.0f} MB",
            f"<= {g['peak_rss_mb']:.0f} MB",
            verdict(m["peak_rss_import_mb"] <= g["peak_rss_mb"]),
        ),
        (
            "  ... incl. re-import",
            f"{m['peak_rss_reimport_mb']:.0f} MB",
            f"<= {g['peak_rss_mb']:.0f} MB",
            verdict(m["peak_rss_reimport_mb"] <= g["peak_rss_mb"]),
        ),
        (f"search({SEARCH_WORD!r}) over the import", f"{m['search_s'] * 1000:.0f} ms", "", ""),
        (
            "cached resolve (1 loop, sequential)",
            f"{m['cached_per_s']:,.0f} /s",
            f">= {g['cached_lookups_per_s']:,.0f} /s",
            verdict(m["cached_per_s"] >= g["cached_lookups_per_s"]),
        ),
        ("  p50 / p99", f"{m['cached_p50_us']:.1f} / {m['cached_p99_us']:.1f} us", "", ""),
        ("  (misses: SQLite resolve, warm-up)", f"{m['uncached_sql_per_s']:,.0f} /s", "", ""),
        (
            f"LDAP load ({summary['ldap_rows']:,} rows)",
            f"{m['ldap_load_rows_per_s']:,.0f} rows/s",
            f"({m['ldap_load_s']:.1f} s)",
            "",
        ),
        (
            f"LDAP uncached resolve (C={summary['ldap_concurrency']})",
            f"{m['ldap_per_s']:,.0f} /s",
            f">= {g['ldap_lookups_per_s']:,.0f} /s",
            verdict(m["ldap_per_s"] >= g["ldap_lookups_per_s"]),
        ),
        ("  p50 / p99", f"{m['ldap_p50_ms']:.2f} / {m['ldap_p99_ms']:.2f} ms", "", ""),
        ("raw python-ldap (1 conn, 1 thread)", f"{m['raw_per_s']:,.0f} /s", "", ""),
        ("  p50 / p99", f"{m['raw_p50_ms']:.2f} / {m['raw_p99_ms']:.2f} ms", "", ""),
        ("ratio pli / raw", f"{m['ratio_pli_raw']:.2f}", "", ""),
    ]
    w = [max(len(r[c]) for r in rows) for c in range(4)]
    head = (
        f"directory bench: medians of {summary['runs']} run(s) ({summary['machine']['cpus']} CPUs)"
    )
    lines = [head, "-" * len(head)]
    lines += [f"{a:<{w[0]}}  {b:>{w[1]}}  {c:<{w[2]}}  {d}".rstrip() for a, b, c, d in rows]
    return "\n".join(lines)


def _summarise(
    args: argparse.Namespace,
    sql: list[dict[str, Any]],
    ldap_runs: list[dict[str, Any]],
    gen_s: float,
) -> dict[str, Any]:
    def col(runs: list[dict[str, Any]], *path: str) -> list[float]:
        out = []
        for r in runs:
            v: Any = r
            for p in path:
                v = v[p]
            out.append(float(v))
        return out

    per_run = {
        "import_s": col(sql, "import_s"),
        "reimport_s": col(sql, "reimport_s"),
        "peak_rss_import_mb": col(sql, "peak_rss_import_mb"),
        "peak_rss_reimport_mb": col(sql, "peak_rss_reimport_mb"),
        "search_s": col(sql, "search_s"),
        "cached_per_s": col(sql, "cached", "per_s"),
        "cached_p50_us": col(sql, "cached", "p50"),
        "cached_p99_us": col(sql, "cached", "p99"),
        "uncached_sql_per_s": [round(r["cache_keys"] / r["cache_warm_s"], 1) for r in sql],
        "ldap_load_s": col(ldap_runs, "load_s"),
        "ldap_load_rows_per_s": col(ldap_runs, "load_rows_per_s"),
        "ldap_per_s": col(ldap_runs, "lookups", "per_s"),
        "ldap_p50_ms": col(ldap_runs, "lookups", "p50"),
        "ldap_p99_ms": col(ldap_runs, "lookups", "p99"),
        "raw_per_s": col(ldap_runs, "raw", "per_s"),
        "raw_p50_ms": col(ldap_runs, "raw", "p50"),
        "raw_p99_ms": col(ldap_runs, "raw", "p99"),
    }
    per_run["ratio_pli_raw"] = [
        round(a / b, 3) for a, b in zip(per_run["ldap_per_s"], per_run["raw_per_s"], strict=True)
    ]
    median = {k: round(_med(v), 4) for k, v in per_run.items()}
    return {
        "runs": args.runs,
        "quick": args.quick,
        "rows": args.rows,
        "lookups": args.lookups,
        "lookup_keys": args.lookup_keys,
        "ldap_rows": args.ldap_rows,
        "ldap_lookups": args.ldap_lookups,
        "ldap_concurrency": args.ldap_concurrency,
        "generate_s": round(gen_s, 2),
        "goals": GOALS,
        "median": median,
        "per_run": per_run,
        "sql_runs": sql,
        "ldap_runs": ldap_runs,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
        },
    }


# --- main ------------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes and 1 run (smoke test, under a minute)"
    )
    p.add_argument("--runs", type=int, help="repetitions of each part (default 3)")
    p.add_argument("--rows", type=int, help="rows of the SQLite extraction (default 1,000,000)")
    p.add_argument("--lookups", type=int, help="cached lookups per run (default 200,000)")
    p.add_argument("--lookup-keys", type=int, help="distinct cached keys (default 10,000)")
    p.add_argument("--ldap-rows", type=int, help="rows loaded into slapd (default 20,000)")
    p.add_argument("--ldap-lookups", type=int, help="uncached LDAP lookups (default 20,000)")
    p.add_argument(
        "--ldap-concurrency",
        type=int,
        default=8,
        help="tasks issuing LDAP lookups; pool_size = min(this, 8) (default 8)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the lookup draws (default 1)")
    p.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="bound in seconds of each run of each part (default 900)",
    )
    p.add_argument("--skip-ldap", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--child-sql",
        nargs=5,
        help=argparse.SUPPRESS,
        metavar=("EXTRACTION", "DB", "KEYS", "LOOKUPS", "SEED"),
    )
    args = p.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for name, value in base.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if (
        min(
            args.runs,
            args.rows,
            args.lookups,
            args.lookup_keys,
            args.ldap_rows,
            args.ldap_lookups,
            args.ldap_concurrency,
        )
        < 1
    ):
        p.error("sizes, runs and concurrency must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.child_sql:
        extraction, db, keys, lookups, seed = args.child_sql
        result = asyncio.run(
            _sql_child(Path(extraction), Path(db), Path(keys), int(lookups), int(seed))
        )
        print(json.dumps(result))
        return 0

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="pli-dirbench-"))
    try:
        big, small = work / "extraction-sql.txt", work / "extraction-ldap.txt"
        print(f"generating {args.rows:,} + {args.ldap_rows:,} rows ...", flush=True)
        gen_s = _generate(args.rows, 1, big, args.timeout)
        _generate(args.ldap_rows, 2, small, args.timeout)

        rng = random.Random(args.seed)
        keys = _sample(_addresses(big), args.lookup_keys, rng)  # the parent stays small
        keys_file = work / "keys.json"
        keys_file.write_text(json.dumps(keys))
        ldap_addresses = rng.choices(list(_addresses(small)), k=args.ldap_lookups)

        sql_runs: list[dict[str, Any]] = []
        ldap_runs: list[dict[str, Any]] = []
        for i in range(1, args.runs + 1):
            print(f"run {i}/{args.runs}: SQLite import, search, cached lookups ...", flush=True)
            r = _sql_run(i, big, work, keys_file, args)
            print(
                f"  import {r['import_s']:.1f} s, re-import {r['reimport_s']:.1f} s, "
                f"peak RSS {r['peak_rss_import_mb']:.0f} MB, "
                f"cached {r['cached']['per_s']:,.0f}/s",
                flush=True,
            )
            sql_runs.append(r)
            if args.skip_ldap:
                continue
            print(f"run {i}/{args.runs}: slapd load and uncached lookups ...", flush=True)
            lr = _ldap_run(i, small, ldap_addresses, args)
            print(
                f"  load {lr['load_rows_per_s']:,.0f} rows/s, pli {lr['lookups']['per_s']:,.0f}"
                f"/s, raw {lr['raw']['per_s']:,.0f}/s",
                flush=True,
            )
            ldap_runs.append(lr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.skip_ldap:  # development aid only: no table without part 3
        print(json.dumps(sql_runs, indent=2))
        return 0
    summary = _summarise(args, sql_runs, ldap_runs, gen_s)
    out = RESULTS / f"directory-{stamp}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(_table(summary))
    print(f"\nresults: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
