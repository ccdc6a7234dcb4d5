"""The `pli` command as a user runs it: help, exit codes, one-line errors, real data dir.

What concerns the process (``python -m gateway``, ``pli init`` itself, exit codes, stderr
holding nothing but the one line, the environment) runs real processes (``pli``); the
rest calls the same ``main`` in this process (``run``), a second cheaper per command.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from gateway.app.services import build_services
from gateway.base.config import load_settings
from gateway.core.model import Channel
from tests.support.cli import pli_in_process as run
from tests.support.cli import pli_process as pli
from tests.support.datadir import DemoDataDirs

pytestmark = pytest.mark.slow  # end to end: real `pli` processes (and one per module)

FIX = Path(__file__).parent.parent / "fixtures" / "directory"


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
    assert "import" in run("directory", "--help").stdout
    assert "passwd" in run("user", "--help").stdout
    audit = run("audit", "--help").stdout
    assert "verify" in audit and "query" in audit


def test_help_imports_no_command_group() -> None:
    """``pli --help`` stays fast: the groups are listed from the registry, not imported."""
    probe = (
        "import sys\n"
        "from gateway.cli.main import build_parser\n"
        "build_parser().format_help()\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith("
        "('gateway.cli.', 'gateway.app', 'sqlalchemy', 'pydantic')))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["gateway.cli.common", "gateway.cli.main"]


def test_usage_error_is_exit_2() -> None:
    assert pli("no-such-command").returncode == 2
    assert pli("audit", "query", "--since", "yesterday").returncode == 2


def test_usage_mistake_is_2_and_a_missing_thing_is_1(data_dir: Path) -> None:
    """Exit 2 only for a wrong command line, as argparse's own errors; what the command
    looked for and did not find is a failure (1). Both are one line naming the problem."""
    dd = ("--data-dir", str(data_dir))
    usage = run("queue", "retry", *dd)
    assert usage.returncode == 2
    assert usage.stderr == "pli: error: name entries (ID ...) or use --all\n"
    assert run("queue", "purge", *dd).returncode == 2
    assert run("token", "create", "--scope", "send", *dd).returncode == 2  # no --mailbox
    missing = run("token", "revoke", "t0000000000", *dd)
    assert missing.returncode == 1
    assert missing.stderr == "pli: error: no active token t0000000000\n"
    gone = run("vault", "delete", "0" * 64, "--reason", "test", *dd)
    assert (
        gone.returncode == 1 and gone.stderr == f"pli: error: no object {'0' * 64} in the vault\n"
    )


def test_init_is_idempotent_and_keeps_secrets(data_dir: Path) -> None:
    kek = (data_dir / "keys" / "kek.key").read_text()
    accounts = (data_dir / "demo-accounts.txt").read_text()
    assert run("init", "--data-dir", str(data_dir), "--demo").returncode == 0
    assert (data_dir / "keys" / "kek.key").read_text() == kek
    assert (data_dir / "demo-accounts.txt").read_text() == accounts
    for secret in ("keys/kek.key", "tls/server.key", "demo-accounts.txt"):
        assert (data_dir / secret).stat().st_mode & 0o077 == 0, secret


def test_directory_import_reports_bad_rows(data_dir: Path) -> None:
    done = run(
        "directory",
        "import",
        str(FIX / "extraction-bad.txt"),
        "--data-dir",
        str(data_dir),
        "--dry-run",
    )
    assert done.returncode == 0
    assert f"{FIX / 'extraction-bad.txt'}:4: -: wrong column count: 30 instead of 31" in done.stderr
    assert "10 bad rows; dry run" in done.stdout
    aborted = run(
        "directory",
        "import",
        str(FIX / "extraction-bad.txt"),
        "--data-dir",
        str(data_dir),
        "--max-errors",
        "2",
    )
    assert aborted.returncode == 1 and "ABORTED" in aborted.stdout
    shown = run("directory", "show", "dpi@ch-arras.mssante.fr", "--data-dir", str(data_dir))
    assert shown.returncode == 0 and "APP" in shown.stdout  # the demo directory is intact


def test_errors_are_one_line_without_traceback(data_dir: Path) -> None:
    for args in (
        ("directory", "show", "not-an-address"),
        ("directory", "import", "/nonexistent/file.txt"),
        ("user", "passwd", "a@ch-arras.mssante.fr", "--stdin"),
    ):
        done = pli(*args, "--data-dir", str(data_dir), stdin="short\n")
        assert done.returncode == 1, args
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    weak = pli(
        "user",
        "passwd",
        "dpi@ch-arras.mssante.fr",
        "--stdin",
        "--data-dir",
        str(data_dir),
        stdin="short\n",
    )
    assert weak.returncode == 1 and "at least" in weak.stderr


def test_bad_config_names_the_key(data_dir: Path) -> None:
    env_run = pli(
        "audit", "verify", "--data-dir", str(data_dir), env={"PLI_IMAP__PORT": "not-a-port"}
    )
    assert env_run.returncode == 1
    assert "imap.port" in env_run.stderr and "PLI_IMAP__PORT" in env_run.stderr


async def _failed_logins(data: Path, count: int) -> None:
    async with AsyncExitStack() as stack:
        services = await build_services(load_settings(None, data, environ={}), stack)
        # Together: each failure waits a second before it answers (password guessing).
        await asyncio.gather(
            *(
                services.mailstore.login(
                    "dpi@ch-arras.mssante.fr", "wrong", "127.0.0.9", Channel.IMAP
                )
                for _ in range(count)
            )
        )


def test_audit_verify_detects_tampering_through_cli(
    tmp_path: Path, demo_dirs: DemoDataDirs
) -> None:
    d = demo_dirs.copy(tmp_path / "var")
    assert (
        run(
            "user",
            "passwd",
            "dpi@ch-arras.mssante.fr",
            "--stdin",
            "--data-dir",
            str(d),
            stdin="a-long-enough-password\n",
        ).returncode
        == 0
    )
    # Each failed login appends an audit entry; make a few through the real mail store.
    asyncio.run(_failed_logins(d, 3))
    ok = run("audit", "verify", "--data-dir", str(d))
    assert ok.returncode == 0 and "3 entries" in ok.stdout
    rows = run("audit", "query", "--format", "json", "--data-dir", str(d)).stdout.splitlines()
    assert [json.loads(r)["result"] for r in rows] == ["fail", "fail", "fail"]
    with sqlite3.connect(d / "pli.db") as db:
        db.execute("UPDATE audit_event SET remote='10.0.0.1' WHERE seq=2")
    broken = run("audit", "verify", "--data-dir", str(d))
    assert broken.returncode == 1
    assert "BROKEN at entry 2" in broken.stderr
