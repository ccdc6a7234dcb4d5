"""Initialisation of a data directory: config file, keys, TLS certificate, schema, demo.

Idempotent: running it again never replaces a key, a certificate, a password
or a config file that exists, so ``make run`` can call it every time. Secrets
(the KEK, the TLS key, demo passwords) are created with mode 0600. ``--demo``
also creates the development PKI (RSA 2048, fast enough for tests; never for
production) with certificates for the served ORG/APP/CAB mailboxes, published
in the SQL directory; a plain ``pli init`` creates no PKI (production loads the
health PKI's files; ``pli pki init`` makes a development one). Either way a
PKI without a notary certificate gets one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from directory.base import NotInDirectory
from directory.sql import SqlDirectory
from directory.sql_import import import_extraction, import_trustlist
from gateway.app.demo import DEMO_DIR, DEMO_DOMAINS, DEMO_IDENTITIES
from gateway.base.config import Settings, load_settings
from gateway.base.db import create_engine
from gateway.base.tls import make_dev_certificate
from gateway.core.patients import create_patient_key
from gateway.core.trust import ensure_notary, notary_address
from gateway.mailstore.accounts import Accounts
from gateway.migrations import migrate
from gateway.smime import PkiError, PkiPaths, init_pki, load_certificate
from policies.rules import DEFAULT_RULES_FILE
from vault.checkpoints import create_signing_key
from vault.keys import create_kek_file

__all__ = ["DemoAccount", "init_data_dir", "read_demo_accounts"]

_DEMO_FILE = "demo-accounts.txt"
_DEMO_KEY_SIZE = 2048  # demo and tests only: a 3072-bit PKI takes seconds to create
_SHARED_KINDS = frozenset({"ORG", "APP", "CAB"})  # mailboxes whose key the gateway holds


@dataclass(frozen=True, slots=True)
class DemoAccount:
    address: str
    password: str


def _toml_config(domains: tuple[str, ...], hostname: str) -> str:
    listed = ", ".join(f'"{d}"' for d in domains)
    return (
        "# pli configuration; every key can be overridden by PLI_<SECTION>__<KEY>.\n"
        f'hostname = "{hostname}"\n'
        f"domains = [{listed}]\n\n"
        '[smtp]\nhost = "127.0.0.1"\nmta_port = 2525\nsubmission_port = 5587\n'
        "submission_tls_port = 4465\n\n"
        '[imap]\nhost = "127.0.0.1"\nport = 1143\n\n'
        '[http]\nhost = "127.0.0.1"\nport = 8080\n'
    )


def _write_demo_accounts(data_dir: Path, accounts: list[DemoAccount]) -> None:
    fd = os.open(data_dir / _DEMO_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{a.address} {a.password}\n" for a in accounts)


def read_demo_accounts(data_dir: Path) -> list[DemoAccount]:
    path = data_dir / _DEMO_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        addr, _, pw = line.partition(" ")
        if addr and pw:
            out.append(DemoAccount(addr, pw))
    return out


def _prepare_files(
    data_dir: Path, demo: bool, domains: tuple[str, ...], config_file: Path | None
) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    cfg = data_dir / "pli.toml"
    if config_file is None and not cfg.exists():
        served = domains or (DEMO_DOMAINS if demo else ())
        cfg.write_text(_toml_config(served, "pli.localhost"))
    settings = load_settings(config_file, data_dir)
    if not settings.kek_path().exists():
        create_kek_file(settings.kek_path())
    cert, key = settings.tls_files()
    if not cert.exists() or not key.exists():
        make_dev_certificate(
            cert.parent, ["localhost", "127.0.0.1", settings.hostname, *settings.domains]
        )
    settings.vault_path().mkdir(parents=True, exist_ok=True)
    if not settings.audit_key_path().exists():
        create_signing_key(settings.audit_key_path())
    if not settings.patient_key_path().exists():
        create_patient_key(settings.patient_key_path())
    rules = data_dir / "policies.toml"
    if not settings.policy.file and not rules.exists():
        # The defaults, written out so that an operator edits a file rather than code.
        shutil.copyfile(DEFAULT_RULES_FILE, rules)
    return settings


def _demo_mailboxes(domains: tuple[str, ...]) -> list[str]:
    """The ORG/APP/CAB mailboxes of the demo extraction in the served domains."""
    served = {d.lower() for d in domains}
    out = []
    with (DEMO_DIR / "extraction-demo.txt").open(encoding="utf-8") as fh:
        next(fh, None)  # the header line
        for line in fh:
            kind, _, rest = line.partition("|")
            address = rest.partition("|")[0].strip().lower()
            if kind in _SHARED_KINDS and address.rpartition("@")[2] in served:
                out.append(address)
    return out


def _prepare_pki(settings: Settings, demo: bool) -> list[tuple[str, bytes]]:
    """Create the demo PKI if asked and absent, and the notary; return the (address, DER)
    of the served mailboxes' certificates, to publish in the directory."""
    paths = PkiPaths(settings.pki_dir())
    if demo and not paths.root_cert.exists() and settings.domains:
        init_pki(
            paths.directory,
            list(settings.domains),
            _demo_mailboxes(settings.domains),
            None,
            key_size=_DEMO_KEY_SIZE,
        )
    try:
        ensure_notary(settings, key_size=_DEMO_KEY_SIZE if demo else 3072)
    except PkiError:
        if demo:
            raise
        # An operator PKI whose CA key this configuration cannot open: the server runs
        # without receipts and says so (smime.notary_missing) until pli pki issues one.
    folder = paths.directory / "mailboxes"
    if not demo or not folder.is_dir():
        return []
    served, notary = set(settings.domains), notary_address(settings)
    return [
        (pem.name[:-4], load_certificate(pem).public_bytes(Encoding.DER))
        for pem in sorted(folder.glob("*.pem"))
        if pem.name[:-4] != notary and pem.name[:-4].rpartition("@")[2] in served
    ]


async def init_data_dir(
    data_dir: Path,
    *,
    demo: bool,
    domains: tuple[str, ...] = (),
    config_file: Path | None = None,
) -> tuple[Settings, list[DemoAccount]]:
    settings = await asyncio.to_thread(_prepare_files, data_dir, demo, domains, config_file)
    accounts: list[DemoAccount] = []
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url(), one_trip=settings.tuning.sqlite_one_trip)
        stack.push_async_callback(engine.dispose)
        await migrate(engine)
        if demo:
            await import_extraction(engine, DEMO_DIR / "extraction-demo.txt")
            await import_trustlist(engine, DEMO_DIR / "liste-blanche-demo.xml")
            accounts = await asyncio.to_thread(read_demo_accounts, data_dir)
            if not accounts:
                store = Accounts(engine)
                accounts = [DemoAccount(a, secrets.token_urlsafe(12)) for a in DEMO_IDENTITIES]
                for acc in accounts:
                    await store.set_password(acc.address, acc.password)
                await asyncio.to_thread(_write_demo_accounts, data_dir, accounts)
        published = await asyncio.to_thread(_prepare_pki, settings, demo)
        directory = SqlDirectory(engine)
        for address, der in published:  # so that demo domains encrypt to each other
            try:
                await directory.add_certificate(address, der)
            except NotInDirectory:
                continue  # not in the demo directory: nothing to publish it for
    return settings, accounts
