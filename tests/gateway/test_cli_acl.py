"""`pli acl`: the operator gives delegated users exact rights on a shared mailbox."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.cli import pli_in_process
from tests.support.datadir import DemoDataDirs

URGENCES = "urgences@ch-arras.mssante.fr"
DOCTOR = "sophie.bernard@ch-arras.mssante.fr"
GP = "jean.petit@medecin.mssante.fr"


def test_acl_set_list_remove_refusals_and_audit(tmp_path: Path, demo_dirs: DemoDataDirs) -> None:
    data = ["--data-dir", str(demo_dirs.copy(tmp_path / "var"))]

    def pli(*args: str) -> subprocess.CompletedProcess[str]:
        return pli_in_process(*args, *data)

    pli("directory", "delegate", URGENCES, DOCTOR)
    listed = pli("acl", "list", URGENCES)
    assert listed.returncode == 0 and DOCTOR in listed.stdout and "(default)" in listed.stdout
    given = pli("acl", "set", URGENCES, DOCTOR, "altrs")  # any order, RFC 4314 letters
    assert given.returncode == 0 and given.stdout.strip().endswith(": lrsta"), given.stderr
    listed = pli("acl", "list", URGENCES)
    line = next(ln for ln in listed.stdout.splitlines() if DOCTOR in ln)
    assert "lrsta" in line and "(default)" not in line
    stranger = pli("acl", "set", URGENCES, GP, "lr")
    assert stranger.returncode == 1 and "is not a delegate of" in stranger.stderr
    bad = pli("acl", "set", URGENCES, DOCTOR, "lrz")
    assert bad.returncode == 1 and "unknown rights 'z'" in bad.stderr
    back = pli("acl", "remove", URGENCES, DOCTOR)
    assert back.returncode == 0 and "default rights" in back.stdout
    assert "(default)" in pli("acl", "list", URGENCES).stdout
    trail = pli("audit", "query", "--action", "mailbox.acl", "--format", "csv")
    assert trail.stdout.count(URGENCES) == 2  # the grant and the removal
