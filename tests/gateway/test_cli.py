"""The `pli` command as a user runs it: help, exit codes, one-line errors, real data dir."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

FIX = Path(__file__).parent.parent / "fixtures" / "directory"


def pli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli") / "var"
    done = pli("init", "--data-dir", str(d), "--demo")
    assert done.returncode == 0, done.stderr
    assert "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr" in done.stdout
    return d


def test_help_lists_every_command() -> None:
    out = pli("--help").stdout
    for cmd in ("init", "serve", "directory", "user", "audit"):
        assert cmd in out
    assert "import" in pli("directory", "--help").stdout
    assert "passwd" in pli("user", "--help").stdout
    audit = pli("audit", "--help").stdout
    assert "verify" in audit and "query" in audit


def test_usage_error_is_exit_2() -> None:
    assert pli("no-such-command").returncode == 2
    assert pli("audit", "query", "--since", "yesterday").returncode == 2


def test_init_is_idempotent_and_keeps_secrets(data_dir: Path) -> None:
    kek = (data_dir / "keys" / "kek.key").read_text()
    accounts = (data_dir / "demo-accounts.txt").read_text()
    assert pli("init", "--data-dir", str(data_dir), "--demo").returncode == 0
    assert (data_dir / "keys" / "kek.key").read_text() == kek
    assert (data_dir / "demo-accounts.txt").read_text() == accounts
    for secret in ("keys/kek.key", "tls/server.key", "demo-accounts.txt"):
        assert (data_dir / secret).stat().st_mode & 0o077 == 0, secret


def test_directory_import_reports_bad_rows(data_dir: Path) -> None:
    done = pli("directory", "import", str(FIX / "extraction-bad.txt"), "--data-dir",
               str(data_dir), "--dry-run")
    assert done.returncode == 0
    assert f"{FIX / 'extraction-bad.txt'}:4: -: wrong column count: 30 instead of 31" in done.stderr
    assert "10 bad rows; dry run" in done.stdout
    aborted = pli("directory", "import", str(FIX / "extraction-bad.txt"), "--data-dir",
                  str(data_dir), "--max-errors", "2")
    assert aborted.returncode == 1 and "ABORTED" in aborted.stdout
    shown = pli("directory", "show", "dpi@ch-arras.mssante.fr", "--data-dir", str(data_dir))
    assert shown.returncode == 0 and "APP" in shown.stdout  # the demo directory is intact


def test_errors_are_one_line_without_traceback(data_dir: Path) -> None:
    for args in (("directory", "show", "not-an-address"),
                 ("directory", "import", "/nonexistent/file.txt"),
                 ("user", "passwd", "a@ch-arras.mssante.fr", "--stdin")):
        done = pli(*args, "--data-dir", str(data_dir), stdin="short\n")
        assert done.returncode == 1, args
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    weak = pli("user", "passwd", "dpi@ch-arras.mssante.fr", "--stdin", "--data-dir",
               str(data_dir), stdin="short\n")
    assert weak.returncode == 1 and "at least" in weak.stderr


def test_bad_config_names_the_key(data_dir: Path) -> None:
    env_run = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60,
        env={"PLI_IMAP__PORT": "not-a-port", "PATH": "/usr/bin:/bin"})
    assert env_run.returncode == 1
    assert "imap.port" in env_run.stderr and "PLI_IMAP__PORT" in env_run.stderr


def test_audit_verify_detects_tampering_through_cli(tmp_path: Path) -> None:
    d = tmp_path / "var"
    assert pli("init", "--data-dir", str(d), "--demo").returncode == 0
    assert pli("user", "passwd", "dpi@ch-arras.mssante.fr", "--stdin", "--data-dir", str(d),
               stdin="a-long-enough-password\n").returncode == 0
    # Each failed login appends an audit entry; make a few through the real mail store.
    script = (
        "import asyncio,sys\n"
        "from contextlib import AsyncExitStack\n"
        "from gateway.app.services import build_services\n"
        "from gateway.base.config import load_settings\n"
        "async def m():\n"
        "  async with AsyncExitStack() as st:\n"
        "    from pathlib import Path\n"
        f"    sv = await build_services(load_settings(None, Path('{d}')), st)\n"
        "    for i in range(3):\n"
        "      await sv.mailstore.login('dpi@ch-arras.mssante.fr', 'wrong', '127.0.0.9', 'test')\n"
        "asyncio.run(m())\n")
    assert subprocess.run([sys.executable, "-c", script], timeout=60).returncode == 0
    ok = pli("audit", "verify", "--data-dir", str(d))
    assert ok.returncode == 0 and "3 entries" in ok.stdout
    rows = pli("audit", "query", "--format", "json", "--data-dir", str(d)).stdout.splitlines()
    assert [json.loads(r)["result"] for r in rows] == ["fail", "fail", "fail"]
    with sqlite3.connect(d / "pli.db") as db:
        db.execute("UPDATE audit_event SET remote='10.0.0.1' WHERE seq=2")
    broken = pli("audit", "verify", "--data-dir", str(d))
    assert broken.returncode == 1
    assert "BROKEN at entry 2" in broken.stderr
