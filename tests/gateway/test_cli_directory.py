"""`pli directory …` as an operator runs it, on the SQL directory and on a real slapd."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from gateway.cli.directory import _ProgressBar
from tests.support.cli import pli_in_process as pli
from tests.support.slapd import ROOT_DN, ROOT_PW, Slapd, new_subtree

FIX = Path(__file__).parent.parent / "fixtures" / "directory"
ORG = "secretariat.geriatrie@ch-arras.mssante.fr"
SOPHIE = "sophie.bernard@ch-arras.mssante.fr"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("clidir") / "var"
    assert pli("init", "--data-dir", str(d)).returncode == 0
    done = pli("directory", "import", str(FIX / "extraction-sample.txt"), "--data-dir", str(d))
    assert done.returncode == 0 and "200 added" in done.stdout, done.stderr
    return d


def test_search_show_and_stats(data_dir: Path) -> None:
    dd = ("--data-dir", str(data_dir))
    found = pli("directory", "search", "geriatrie arras", *dd)
    assert found.returncode == 0 and ORG in found.stdout, found.stderr
    rows = [
        json.loads(line)
        for line in pli(
            "directory", "search", "GÉRIATRIE", "--format", "json", *dd
        ).stdout.splitlines()
    ]
    assert ORG in {r["address"] for r in rows}
    assert pli("directory", "search", "zzzz-nobody", *dd).stdout == ""
    out_of_range = pli("directory", "search", "x", "--limit", "0", *dd)  # a usage mistake
    assert out_of_range.returncode == 2, out_of_range.stderr
    assert out_of_range.stderr == "pli: error: --limit must be between 1 and 500\n"
    shown = json.loads(pli("directory", "show", SOPHIE, "--format", "json", *dd).stdout)
    assert shown["display_name"] == "Dr Sophie BERNARD" and shown["kind"] == "PER"
    stats = pli("directory", "stats", *dd).stdout
    assert "mailboxes        200" in stats and "PER            141" in stats


def test_delegate_is_checked_audited_and_revocable(data_dir: Path) -> None:
    dd = ("--data-dir", str(data_dir))
    done = pli("directory", "delegate", ORG, SOPHIE, *dd)
    assert done.returncode == 0 and "granted" in done.stdout, done.stderr
    assert "already granted" in pli("directory", "delegate", ORG, SOPHIE, *dd).stdout
    shown = json.loads(pli("directory", "show", ORG, "--format", "json", *dd).stdout)
    assert shown["delegates"] == [SOPHIE]
    refused = pli("directory", "delegate", SOPHIE, ORG, *dd)
    assert refused.returncode == 1 and "PER mailbox" in refused.stderr
    assert refused.stderr.count("\n") == 1  # one line, no traceback
    unknown = pli("directory", "delegate", "nobody@ch-arras.mssante.fr", SOPHIE, *dd)
    assert unknown.returncode == 1 and "not in the directory" in unknown.stderr
    bad = pli("directory", "delegate", "not-an-address", SOPHIE, *dd)
    assert bad.returncode == 1 and "address" in bad.stderr
    log = pli("audit", "query", "--action", "directory.delegate", "--format", "json", *dd)
    events = [json.loads(line) for line in log.stdout.splitlines()]
    assert [e["mailbox"] for e in events] == [ORG]  # the no-op second grant is not audited
    assert "revoked" in pli("directory", "delegate", ORG, SOPHIE, "--revoke", *dd).stdout
    shown = json.loads(pli("directory", "show", ORG, "--format", "json", *dd).stdout)
    assert shown["delegates"] == []
    assert pli("audit", "verify", *dd).returncode == 0


def _generation(data_dir: Path) -> int:
    """The SQL change counter the caches of running instances watch."""
    with closing(sqlite3.connect(data_dir / "pli.db")) as db:
        row = db.execute("SELECT generation FROM directory_state WHERE id = 1").fetchone()
    return int(row[0])


def test_import_to_ldap_and_use_it_as_the_backend(data_dir: Path, slapd: Slapd) -> None:
    env = {
        "PLI_DIRECTORY__BACKEND": "ldap",
        "PLI_DIRECTORY__LDAP__URL": slapd.url,
        "PLI_DIRECTORY__LDAP__BASE_DN": new_subtree(slapd),
        "PLI_DIRECTORY__LDAP__BIND_DN": ROOT_DN,
        "PLI_DIRECTORY__LDAP__BIND_PASSWORD": ROOT_PW,
    }
    dd = ("--data-dir", str(data_dir))
    extraction = ("directory", "import", str(FIX / "extraction-sample.txt"), "--to", "ldap")
    before = _generation(data_dir)
    dry = pli(*extraction, "--dry-run", *dd, env=env)
    assert dry.returncode == 0 and "dry run" in dry.stdout, dry.stderr
    assert _generation(data_dir) == before  # nothing written, nothing to forget
    done = pli(*extraction, *dd, env=env)
    assert done.returncode == 0 and "200 added" in done.stdout, done.stderr
    # LDAP keeps no generation: the SQL one tells running instances to drop their caches.
    assert _generation(data_dir) == before + 1
    trust = pli("directory", "import", str(FIX / "liste-blanche-sample.xml"), *dd, env=env)
    assert trust.returncode == 0 and "(ldap)" in trust.stdout, trust.stderr
    assert _generation(data_dir) == before + 2
    assert "backend          ldap" in pli("directory", "stats", *dd, env=env).stdout
    assert "Dr Sophie BERNARD" in pli("directory", "show", SOPHIE, *dd, env=env).stdout
    assert ORG in pli("directory", "search", "geriatrie", *dd, env=env).stdout
    assert "granted" in pli("directory", "delegate", ORG, SOPHIE, *dd, env=env).stdout
    assert _generation(data_dir) == before + 3
    assert "already granted" in pli("directory", "delegate", ORG, SOPHIE, *dd, env=env).stdout
    assert _generation(data_dir) == before + 3  # no change, no bump
    down = pli(
        "directory",
        "show",
        SOPHIE,
        *dd,
        env={
            **env,
            "PLI_DIRECTORY__LDAP__URL": "ldap://127.0.0.1:9",
            "PLI_DIRECTORY__LDAP__TIMEOUT": "2",
        },
    )
    assert down.returncode == 1 and "LDAP directory unavailable" in down.stderr


def test_ldap_backend_needs_its_url(data_dir: Path) -> None:
    done = pli(
        "directory", "stats", "--data-dir", str(data_dir), env={"PLI_DIRECTORY__BACKEND": "ldap"}
    )
    assert done.returncode == 1 and "ldap.url" in done.stderr


def test_progress_bar_draws_one_line() -> None:
    out = io.StringIO()
    bar = _ProgressBar(1000, out)
    bar(500, 10)
    bar(1000, 20)
    bar.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and "100.0%" in text and "20 rows" in text
