"""`pli pki init|issue|revoke` as an operator runs them, checked with the openssl binary."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.cli import pli_in_process

NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"


def _pli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return pli_in_process(*args, "--data-dir", str(data_dir))


def test_pki_commands_make_a_chain_openssl_accepts(tmp_path: Path) -> None:
    data = tmp_path / "var"
    # Not --demo: that creates the development PKI itself (gateway/app/datadir.py).
    assert (
        _pli(
            "init",
            "--domain",
            "ch-arras.mssante.fr",
            "--domain",
            "ehpad-les-tilleuls.mssante.fr",
            data_dir=data,
        ).returncode
        == 0
    )
    made = _pli(
        "pki",
        "init",
        "--key-size",
        "2048",
        "--mailbox",
        "urgences@ch-arras.mssante.fr",
        data_dir=data,
    )
    assert made.returncode == 0, made.stderr
    pki = data / "pki"
    chain = pki / "ca" / "chain.pem"
    tls = pki / "tls" / "ch-arras.mssante.fr.pem"
    checked = subprocess.run(
        ["openssl", "verify", "-CAfile", str(chain), str(tls)], capture_output=True, text=True
    )
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stderr
    issued = _pli("pki", "issue", NURSE, "--key-size", "2048", data_dir=data)
    assert issued.returncode == 0 and NURSE in issued.stdout, issued.stderr
    again = _pli("pki", "issue", NURSE, data_dir=data)
    assert again.returncode == 1 and again.stderr.startswith("pli: ")
    revoked = _pli("pki", "revoke", NURSE, data_dir=data)
    assert revoked.returncode == 0, revoked.stderr
    crl = subprocess.run(
        ["openssl", "crl", "-in", str(pki / "crl.pem"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Revoked Certificates" in crl
    bad = _pli("pki", "issue", "../../etc/passwd@x.fr", data_dir=data)
    assert bad.returncode == 1 and not (tmp_path / "etc").exists()
