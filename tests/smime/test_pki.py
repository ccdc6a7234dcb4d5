"""The development PKI: layout, file modes, certificate profiles, chains, CRL, CLI."""

from __future__ import annotations

import argparse
import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from gateway.base.config import Settings
from gateway.cli import pki as cli_pki
from gateway.cli.main import build_parser
from gateway.smime import pki
from gateway.smime.verification import Reason, verify
from tests.smime.conftest import APP, DOMAIN, ORG, PASSPHRASE, DevPki


def test_layout_and_modes(dev_pki: DevPki) -> None:
    p = dev_pki.paths
    for path in (
        p.root_cert,
        p.intermediate_cert,
        p.chain,
        p.crl,
        *p.tls(DOMAIN),
        *p.mailbox(ORG),
        *p.mailbox(APP),
    ):
        assert path.is_file(), path
    for key in (p.root_key, p.intermediate_key, p.tls(DOMAIN)[1], p.mailbox(ORG)[1]):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert p.mailbox(ORG)[0].name == f"{ORG}.pem"
    assert len(pki.load_certificates(p.chain)) == 2


def test_keys_need_the_passphrase(dev_pki: DevPki) -> None:
    with pytest.raises(pki.PkiError, match="passphrase required"):
        pki.load_private_key(dev_pki.paths.mailbox(ORG)[1])
    with pytest.raises(pki.PkiError, match="wrong passphrase"):
        pki.load_private_key(dev_pki.paths.mailbox(ORG)[1], b"nope")


def test_mailbox_certificate_profile(dev_pki: DevPki) -> None:
    cert = dev_pki.org.cert
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    )
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == [ORG]
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.public_key().key_size == 2048  # type: ignore[union-attr]
    assert dev_pki.org.chain == (dev_pki.intermediate,)


def test_tls_certificate_chain_builds(dev_pki: DevPki) -> None:
    certs = pki.load_certificates(dev_pki.paths.tls(DOMAIN)[0])
    eku = certs[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    verifier = (
        PolicyBuilder()
        .store(Store([dev_pki.root]))
        .time(dt.datetime.now(dt.UTC))
        .build_server_verifier(DNSName(DOMAIN))
    )
    chain = verifier.verify(certs[0], certs[1:])
    assert chain[-1] == dev_pki.root and chain[1] == dev_pki.intermediate


def test_crl_is_signed_by_the_intermediate(dev_pki: DevPki) -> None:
    crl = dev_pki.crl()
    assert crl.issuer == dev_pki.intermediate.subject
    assert crl.is_signature_valid(dev_pki.intermediate.public_key())  # type: ignore[arg-type]


def test_issue_then_revoke(dev_pki: DevPki) -> None:
    address = "dr.martin@hopital.example.fr"
    issued = pki.issue(dev_pki.paths.directory, address, PASSPHRASE, key_size=2048)
    assert (
        issued.cert.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATIONAL_UNIT_NAME)[
            0
        ].value
        == "PER"
    )
    with pytest.raises(pki.PkiError, match="already has a certificate"):
        pki.issue(dev_pki.paths.directory, address, PASSPHRASE, key_size=2048)
    before = dev_pki.crl().extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    serial = pki.revoke(dev_pki.paths.directory, address, PASSPHRASE)
    crl = dev_pki.crl()
    assert serial == issued.cert.serial_number
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == before + 1
    assert crl.is_signature_valid(dev_pki.intermediate.public_key())  # type: ignore[arg-type]
    assert not dev_pki.paths.mailbox(address)[0].exists()
    assert dev_pki.paths.revoked(address, serial)[1].is_file()  # the key is kept
    # the address can be certified again once the old certificate is revoked
    again = pki.issue(dev_pki.paths.directory, address, PASSPHRASE, key_size=2048)
    assert again.cert.serial_number != serial


@pytest.mark.parametrize(
    "bad",
    [
        "../etc@x.fr",
        "a/b@x.fr",
        "a\x00b@x.fr",
        "a..b@x.fr",
        "a@..",
        "a@x..fr",
        "a@x/../y.fr",
        "noat",
        "a@b@c.fr",
        ".hidden@x.fr",
        "a@-x.fr",
        "é@x.fr",
        "",
    ],
)
def test_unsafe_addresses_are_refused(dev_pki: DevPki, bad: str) -> None:
    with pytest.raises(pki.PkiError):
        dev_pki.paths.mailbox(bad)
    with pytest.raises(pki.PkiError):
        pki.issue(dev_pki.paths.directory, bad, PASSPHRASE, key_size=2048)


def test_init_refuses_an_existing_pki(dev_pki: DevPki) -> None:
    with pytest.raises(pki.PkiError, match="already exists"):
        pki.init_pki(dev_pki.paths.directory, [DOMAIN], [], PASSPHRASE, key_size=2048)


def test_revoke_unknown_address(dev_pki: DevPki) -> None:
    with pytest.raises(pki.PkiError, match="has no certificate"):
        pki.revoke(dev_pki.paths.directory, "nobody@hopital.example.fr", PASSPHRASE)


def test_load_identity_refuses_a_foreign_key(dev_pki: DevPki) -> None:
    with pytest.raises(pki.PkiError, match="does not belong"):
        pki.load_identity(dev_pki.paths.mailbox(ORG)[0], dev_pki.paths.mailbox(APP)[1], PASSPHRASE)


async def test_cli_init_issue_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path, domains=("ehpad.example.fr",))
    secret = tmp_path / "pass"
    secret.write_bytes(b"s3cret\n")
    ns = argparse.Namespace(
        action="init", passphrase_file=secret, mailboxes=["accueil@ehpad.example.fr"], key_size=2048
    )
    assert await cli_pki.run(ns, settings) == 0
    paths = pki.PkiPaths(tmp_path / "pki")
    assert paths.tls("ehpad.example.fr")[0].is_file()
    pki.load_private_key(paths.mailbox("accueil@ehpad.example.fr")[1], b"s3cret")
    ns = argparse.Namespace(
        action="issue",
        passphrase_file=secret,
        address="dr@ehpad.example.fr",
        kind="PER",
        key_size=2048,
    )
    assert await cli_pki.run(ns, settings) == 0
    ns = argparse.Namespace(action="revoke", passphrase_file=secret, address="dr@ehpad.example.fr")
    assert await cli_pki.run(ns, settings) == 0
    out = capsys.readouterr().out
    assert "PKI created" in out and "issued serial" in out and "revoked serial" in out
    assert "s3cret" not in out


def test_cli_parser_registers_pki() -> None:
    parser = build_parser("pki")
    args = parser.parse_args(["pki", "init", "--mailbox", "a@b.fr", "--mailbox", "c@b.fr"])
    assert args.action == "init" and args.mailboxes == ["a@b.fr", "c@b.fr"]
    args = parser.parse_args(["pki", "revoke", "a@b.fr", "--passphrase-file", "-"])
    assert args.address == "a@b.fr" and str(args.passphrase_file) == "-"


def test_revoked_signer_is_refused(dev_pki: DevPki) -> None:
    from gateway.smime import signing

    address = "revoked.signer@hopital.example.fr"
    ident = pki.issue(dev_pki.paths.directory, address, PASSPHRASE, key_size=2048)
    signed = signing.sign(
        b"Content-Type: text/plain\r\n\r\nbonjour\r\n", ident.cert, ident.key, ident.chain
    )
    assert verify(signed, [dev_pki.root], crls=[dev_pki.crl()]).ok
    pki.revoke(dev_pki.paths.directory, address, PASSPHRASE)
    result = verify(signed, [dev_pki.root], crls=[dev_pki.crl()])
    assert not result.ok and result.reason is Reason.REVOKED
