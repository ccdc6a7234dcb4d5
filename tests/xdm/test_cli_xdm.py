"""``pli xdm build|check`` through ``cli_xdm.run`` with parsed arguments (no subprocess)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gateway.cli import xdm as cli_xdm
from gateway.cli.main import build_parser
from gateway.xdm import read_xdm
from tests.xdm import DOC, FIXTURES, SAMPLE_INS, SAMPLE_XDS, fixture, replace_member, sample_zip


def parse(*argv: str) -> argparse.Namespace:
    return build_parser("xdm").parse_args(["xdm", *argv])


def test_build_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "IHE_XDM.zip"
    assert (
        cli_xdm.run(
            parse(
                "build",
                str(FIXTURES / "dlu-sample.xml"),
                str(FIXTURES / "crh-sample.xml"),
                "-o",
                str(out),
            )
        )
        == 0
    )
    assert "2 document(s)" in capsys.readouterr().out
    assert len(read_xdm(out.read_bytes()).documents) == 2
    assert cli_xdm.run(parse("check", str(out))) == 0
    text = capsys.readouterr().out
    assert f"INS: {SAMPLE_XDS} (INS-NIR test, key OK)" in text
    assert "[hash OK]" in text and "[size OK]" in text
    assert "X-MSS-INS: O" in text and "X-MSS-CODECDA: 34133-9,34112-3" in text
    assert not list(tmp_path.glob(".pli-xdm-*"))  # no temporary file left behind


def test_check_sample_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_xdm.run(parse("check", str(FIXTURES / "xdm-sample.zip"), "--format", "json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["ins"]["value"] == SAMPLE_INS
    assert report["headers"] == {"X-MSS-INS": "O", "X-MSS-CODECDA": "34133-9"}
    (doc,) = report["documents"]
    assert doc["name"] == DOC and doc["hash_ok"] and doc["size_ok"]
    assert doc["sha1"] == "0790371801dfef401083bdc64b7a4990f2e50022"


def test_check_tampered_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(
        replace_member(sample_zip(), DOC, fixture("dlu-sample.xml").replace(b"Aucun.", b"Rien.."))
    )
    assert cli_xdm.run(parse("check", str(bad))) == 1
    captured = capsys.readouterr()
    assert "[hash BAD]" in captured.out and "X-MSS-INS: N" in captured.out
    (line,) = captured.err.splitlines()
    assert line.startswith(f"pli: error: {DOC}: SHA-1 ")


def test_check_hostile_zip_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bomb.zip"
    meta = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r/>'
    bad.write_bytes(replace_member(sample_zip(), "IHE_XDM/SUBSET01/METADATA.XML", meta))
    assert cli_xdm.run(parse("check", str(bad), "--format", "json")) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is False and report["reason"] == "xdm-unsafe"
    assert report["member"] == "IHE_XDM/SUBSET01/METADATA.XML"
    assert len(captured.err.splitlines()) == 1 and "external entity" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("check", "/nonexistent/x.zip"), "cannot read /nonexistent/x.zip"),
        (
            ("build", str(FIXTURES / "dlu-sample.xml"), "-o", "/nonexistent/dir/out.zip"),
            "cannot write",
        ),
        (
            (
                "build",
                str(FIXTURES / "dlu-sample.xml"),
                "-o",
                "{tmp}/o.zip",
                "--ins",
                "231056299901772",
            ),
            "key 72 does not match 71",
        ),
        (("build", str(FIXTURES / "README.md"), "-o", "{tmp}/o.zip"), "malformed XML"),
        (("check", str(FIXTURES / "dlu-sample.xml")), "not a zip archive"),
    ],
)
def test_bad_input_is_one_line(
    argv: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(*(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert cli_xdm.run(args) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("pli: error: ")
    assert message in err
    assert not list(tmp_path.iterdir())


def test_build_with_ins_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cda = tmp_path / "noins.xml"
    cda.write_bytes(
        fixture("dlu-sample.xml").replace(b'root="1.2.250.1.213.1.4.10"', b'root="2.25.1"')
    )
    out = tmp_path / "o.zip"
    assert cli_xdm.run(parse("build", str(cda), "-o", str(out), "--ins", SAMPLE_XDS)) == 0
    assert read_xdm(out.read_bytes()).patient_ins is not None
    assert (
        cli_xdm.run(
            parse(
                "build",
                str(cda),
                "-o",
                str(out),
                "--ins",
                SAMPLE_INS,
                "--ins-oid",
                "1.2.250.1.213.1.4.11",
            )
        )
        == 0
    )
    package = read_xdm(out.read_bytes())
    assert package.patient_ins is not None and package.patient_ins.kind == "INS-NIR demo"


@pytest.mark.slow  # end to end: real `pli` processes
def test_pli_xdm_from_the_command_line(tmp_path: Path) -> None:
    """The installed command: build from the DLU, check it, and refuse a tampered package."""
    import subprocess
    import sys

    pli = [sys.executable, "-m", "gateway", "xdm"]
    out = tmp_path / "dlu.zip"
    built = subprocess.run(
        [*pli, "build", str(FIXTURES / "dlu-sample.xml"), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert built.returncode == 0, built.stderr
    checked = subprocess.run([*pli, "check", str(out)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "X-MSS-INS: O" in checked.stdout
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    refused = subprocess.run([*pli, "check", str(bad)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and refused.stderr.startswith("pli: ")
    assert len(refused.stderr.strip().splitlines()) == 1  # one clear line, no traceback
