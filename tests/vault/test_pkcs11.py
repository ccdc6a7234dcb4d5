"""Key-encryption keys in a PKCS#11 token (SoftHSM 2, a real PKCS#11 library).

The tokens live in the session's SoftHSM directory (tests/conftest.py), whose
SOFTHSM2_CONF the pli servers started here inherit.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pkcs11 import Attribute
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.gateway.running import start_pli, stop_pli
from tests.support import softhsm as softhsm_support
from tests.support.datadir import DemoDataDirs
from tests.support.softhsm import SoftHsm
from vault import maintenance
from vault.base import IntegrityError, VaultError
from vault.fs import FsBlobStore
from vault.pkcs11 import Pkcs11KeyProvider
from vault.service import Vault
from vault.tables import vault_object

MODULE = softhsm_support.MODULE
PIN = softhsm_support.PIN


def _token(softhsm: SoftHsm) -> str:
    return softhsm.new_token()


async def test_wrap_inside_the_token_with_a_key_that_cannot_leave(softhsm: SoftHsm) -> None:
    keys = await Pkcs11KeyProvider.open(MODULE, _token(softhsm), PIN, "pli-kek")
    try:
        assert keys.current_kek_id() == "pli-kek-0001"  # created on an empty token
        dek = os.urandom(32)
        kek_id, wrapped = await keys.wrap(dek)
        assert kek_id == "pli-kek-0001" and dek not in wrapped
        assert await keys.unwrap(kek_id, wrapped) == dek
        with pytest.raises(IntegrityError):
            await keys.unwrap(kek_id, wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
        with pytest.raises(VaultError, match="unknown key-encryption key id pli-kek-0009"):
            await keys.unwrap("pli-kek-0009", wrapped)
        key = keys._keys["pli-kek-0001"]
        assert key[Attribute.SENSITIVE] is True and key[Attribute.EXTRACTABLE] is False
    finally:
        await keys.aclose()


async def test_configuration_mistakes_are_named(softhsm: SoftHsm) -> None:
    label = _token(softhsm)
    with pytest.raises(VaultError, match=r"vault\.pkcs11\.pin: the token refused the PIN"):
        await Pkcs11KeyProvider.open(MODULE, label, "0000", "pli-kek")
    with pytest.raises(VaultError, match=r"vault\.pkcs11\.token_label: no token labelled 'nope'"):
        await Pkcs11KeyProvider.open(MODULE, "nope", PIN, "pli-kek")
    with pytest.raises(VaultError, match=r"vault\.pkcs11\.module: cannot load"):
        await Pkcs11KeyProvider.open("/nonexistent/libpkcs11.so", label, PIN, "pli-kek")
    with pytest.raises(VaultError, match=r"vault\.pkcs11\.key_label"):
        Pkcs11KeyProvider(MODULE, label, PIN, "bad label/../x")


async def test_rotation_rewraps_without_rewriting_objects(
    softhsm: SoftHsm, engine: AsyncEngine, tmp_path: Path
) -> None:
    label = _token(softhsm)
    keys = await Pkcs11KeyProvider.open(MODULE, label, PIN, "pli-kek")
    store = FsBlobStore(tmp_path / "blobs")
    vault = Vault(engine, store, keys, 4096)
    try:
        names = []
        for i in range(3):
            obj = await vault.put(f"message {i}".encode() * 1000)
            async with engine.begin() as conn:
                await vault.record(conn, obj)
            names.append(obj.name)
        blobs_before = {p: p.read_bytes() for p in (tmp_path / "blobs").rglob("*") if p.is_file()}
        # A second process (another instance) rotates: this one must follow.
        other = await Pkcs11KeyProvider.open(MODULE, label, PIN, "pli-kek")
        assert await other.rotate() == "pli-kek-0002"
        report = await maintenance.rewrap(engine, other)
        assert (report.new_kek_id, report.rewrapped) == ("pli-kek-0002", 3)
        await other.destroy(["pli-kek-0001"])
        await other.aclose()
        for i, name in enumerate(names):  # the first process reads under the new KEK
            assert await vault.get(name) == f"message {i}".encode() * 1000
        async with engine.connect() as conn:
            assert set((await conn.execute(select(vault_object.c.kek_id))).scalars()) == {
                "pli-kek-0002"
            }
        assert blobs_before == {p: p.read_bytes() for p in blobs_before}  # not rewritten
        assert keys.kek_ids() == ["pli-kek-0002"]
    finally:
        await keys.aclose()


@pytest.mark.slow  # end to end: a real `pli serve` process
def test_a_server_on_the_hsm_then_rotate_kek(
    softhsm: SoftHsm, tmp_path_factory: pytest.TempPathFactory, demo_dirs: DemoDataDirs
) -> None:
    import imaplib
    import smtplib

    label = _token(softhsm)
    data_dir = tmp_path_factory.mktemp("pli-hsm") / "var"
    pin_file = data_dir.parent / "hsm.pin"
    pin_file.write_text(PIN + "\n")
    extra = (
        f'[vault]\nkek = "pkcs11"\n[vault.pkcs11]\nmodule = "{MODULE}"\n'
        f'token_label = "{label}"\npin_file = "{pin_file}"\n'
    )
    pli = start_pli(demo_dirs.copy(data_dir, config_extra=extra))
    nurse = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
    gp = "jean.petit@medecin.mssante.fr"
    ctx = pli.client_context()

    def send(marker: str) -> None:
        with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=30) as s:
            s.starttls(context=ctx)
            s.sendmail(nurse, [gp], f"Subject: x\r\n\r\n{marker}\r\n".encode())

    def read() -> bytes:
        imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=30)
        try:
            imap.starttls(ssl_context=ctx)
            imap.login(gp, pli.accounts[gp])
            _, count = imap.select("INBOX")
            _, got = imap.fetch(f"1:{int(count[0] or 0)}", "(BODY.PEEK[])")
            return b"".join(p[1] for p in got if isinstance(p, tuple))
        finally:
            imap.shutdown()

    try:
        send("before-rotation")
        rotated = pli.cli("vault", "rotate-kek", "--drop-unused", "--settle", "1.5")
        assert rotated.returncode == 0, rotated.stderr
        assert "current key-encryption key pli-kek-0002" in rotated.stdout
        assert "1 old keys destroyed in the HSM" in rotated.stdout
        send("after-rotation")
        both = read()
        assert b"before-rotation" in both and b"after-rotation" in both
        assert (
            not (data_dir / "keys" / "kek.key").exists()
            or "pli-kek" not in (data_dir / "keys" / "kek.key").read_text()
        )
        verified = pli.cli("vault", "verify")
        assert verified.returncode == 0 and " 0 failed" in verified.stdout, verified.stderr
    finally:
        stop_pli(pli)
