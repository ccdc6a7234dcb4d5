"""The fenced internals (gateway/base/tuning lists them): each stays in its one module,
each works on, and each can be switched back to the stock behaviour.

The process-wide items (allocator, TLS read buffer) are applied in a child process
or undone after the test, so the rest of the suite runs on stock settings. ``pli
serve`` with every ``[tuning]`` switch off runs once, end to end over an S3 vault:
SMTP in (threats included), IMAP out, the audit chain checked by the CLI.
"""

from __future__ import annotations

import ast
import asyncio
import asyncio.sslproto
import imaplib
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from minio import Minio

from gateway.app.server import apply_tuning
from gateway.app.services import build_services
from gateway.base.config import TuningSettings, load_settings
from gateway.base.tls import make_dev_certificate, server_context
from gateway.base.tuning.tlsbuffer import (
    STOCK_TLS_READ_BUFFER,
    TLS_READ_BUFFER,
    limit_tls_read_buffer,
)
from tests.gateway.running import RunningPli, start_pli, stop_pli
from tests.support.datadir import DemoDataDirs
from tests.support.moto_s3 import MotoS3Server
from vault.s3 import S3BlobStore

ROOT = Path(__file__).parents[2]
PACKAGES = ("gateway", "vault", "directory", "policies")

# Each private internal pli leans on, and the only modules that may touch it.
FENCED_NAMES: dict[str, set[str]] = {
    "pythonapi": set(),  # CPython's C API: nowhere (vault/buffers.py is gone)
    "_put_object": {"vault/s3_direct.py"},
    "_upload_part": {"vault/s3_direct.py"},
    "_create_multipart_upload": {"vault/s3_direct.py"},
    "_complete_multipart_upload": {"vault/s3_direct.py"},
    "_abort_multipart_upload": {"vault/s3_direct.py"},
    "_fp": {"vault/s3_direct.py"},
    "_set_post_data_state": {"gateway/smtp/server.py"},
    # aiosmtpd's stream pair (the bulk DATA reader) and its STARTTLS marker (implicit TLS).
    "_reader": {"gateway/smtp/server.py"},
    "_writer": {"gateway/smtp/server.py"},
    "_tls_protocol": {"gateway/smtp/server.py"},
    "_call_handler_hook": {"gateway/smtp/server.py"},
    # asyncio has no unread (SMTP DATA) and no discard (IMAP STARTTLS, CVE-2011-0411).
    "_buffer": {"gateway/smtp/data.py", "gateway/imap/server.py"},
}
FENCED_IMPORTS: dict[str, set[str]] = {
    "ctypes": {"gateway/base/tuning/malloc.py"},
    "asyncio.sslproto": {"gateway/base/tuning/tlsbuffer.py"},
    "sqlalchemy.dialects.sqlite.aiosqlite": {"gateway/base/tuning/sqlite.py"},
    "aiosqlite": {"gateway/base/tuning/sqlite.py"},
}


def _uses(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Attribute names (and getattr strings) a module uses, and the modules it imports."""
    names: set[str] = set()
    imports: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # getattr(obj, "_fp")
        elif isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imports.add(node.module)
    return names, imports


def test_private_internals_stay_in_their_fences() -> None:
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            names, imports = _uses(ast.parse(path.read_text(), module))
            for name in names & FENCED_NAMES.keys():
                found.setdefault(name, set()).add(module)
            for imported in imports:
                for fenced in FENCED_IMPORTS:
                    if imported == fenced or imported.startswith(fenced + "."):
                        found.setdefault(fenced, set()).add(module)
    allowed = FENCED_NAMES | FENCED_IMPORTS
    outside = {
        name: sorted(where - allowed[name])
        for name, where in found.items()
        if where - allowed[name]
    }
    assert outside == {}
    assert found["_put_object"] == {"vault/s3_direct.py"}  # the scan does see them


def test_every_switch_is_on_by_default_and_each_turns_off(tmp_path: Path) -> None:
    switches = TuningSettings.model_fields.keys()
    assert set(switches) == {
        "sqlite_one_trip",
        "malloc",
        "tls_read_buffer",
        "smtp_bulk_data",
        "s3_direct",
    }
    assert all(load_settings(None, tmp_path, environ={}).tuning.model_dump().values())
    env = {f"PLI_TUNING__{name.upper()}": "false" for name in switches}
    assert not any(load_settings(None, tmp_path, environ=env).tuning.model_dump().values())


def test_apply_tuning_with_every_switch_off_changes_nothing() -> None:
    before = asyncio.sslproto.SSLProtocol.max_size
    off = TuningSettings(
        sqlite_one_trip=False,
        malloc=False,
        tls_read_buffer=False,
        smtp_bulk_data=False,
        s3_direct=False,
    )
    assert apply_tuning(off) == dict.fromkeys(TuningSettings.model_fields, False)
    assert asyncio.sslproto.SSLProtocol.max_size == before == STOCK_TLS_READ_BUFFER


def test_the_allocator_settings_apply_on_glibc() -> None:
    """Process-wide and irreversible: checked in a child process."""
    code = (
        "from gateway.base.tuning.malloc import tune_allocator\n"
        "assert tune_allocator() is True\n"
        "big = [bytearray(300_000) for _ in range(50)]  # served by mmap now\n"
        "del big\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture
def tls_buffer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo limit_tls_read_buffer after the test: the rest of the suite runs stock."""
    monkeypatch.setattr(
        asyncio.sslproto.SSLProtocol, "max_size", asyncio.sslproto.SSLProtocol.max_size
    )
    yield


def test_tls_buffer_is_left_stock_on_an_untested_python(
    tls_buffer: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The patch relies on SSLProtocol's internals as CPython 3.11-3.13 have them: on any
    other version pli keeps asyncio's own buffer rather than guess."""
    from gateway.base.tuning import tlsbuffer

    monkeypatch.setattr(tlsbuffer, "_TESTED", ())
    before = asyncio.sslproto.SSLProtocol.max_size
    assert limit_tls_read_buffer() is False
    assert asyncio.sslproto.SSLProtocol.max_size == before


@pytest.mark.parametrize("limited", [True, False], ids=["limited", "stock"])
async def test_tls_connections_work_with_either_read_buffer(
    tmp_path: Path, tls_buffer: None, limited: bool
) -> None:
    if limited:
        assert limit_tls_read_buffer() is True
    cert, key = make_dev_certificate(tmp_path, ["localhost"])
    buffers: list[int] = []
    served = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The fence's effect: the read buffer of the server side's SSLProtocol.
        protocol = writer.transport._ssl_protocol  # type: ignore[attr-defined]
        buffers.append(len(protocol._ssl_buffer))
        while data := await reader.read(1 << 20):
            writer.write(data)
            await writer.drain()
        writer.close()
        served.set()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_context(cert, key))
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=str(cert))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
    )
    payload = bytes(range(256)) * 8192  # 2 MiB: many records, many reads
    writer.write(payload)
    await writer.drain()
    echoed = await asyncio.wait_for(reader.readexactly(len(payload)), 30)
    writer.close()
    await asyncio.wait_for(served.wait(), 10)  # the server saw the end: nothing left running
    server.close()
    await server.wait_closed()
    assert echoed == payload
    assert buffers == [TLS_READ_BUFFER if limited else STOCK_TLS_READ_BUFFER]


# --- pli serve with every [tuning] switch off --------------------------------------------

NURSE = "infirmiere.claire.martin@ehpad-les-tilleuls.mssante.fr"
GERIATRICIAN = "sophie.bernard@ch-arras.mssante.fr"
STOCK = "\n".join(["[tuning]", *(f"{name} = false" for name in TuningSettings.model_fields)])
MAX_SIZE = 3_000_000


@pytest.fixture(scope="module")
def stock_pli(
    tmp_path_factory: pytest.TempPathFactory, demo_dirs: DemoDataDirs
) -> Iterator[tuple[RunningPli, MotoS3Server]]:
    s3 = MotoS3Server()
    s3.start()
    vault = (
        f'\n\n[vault]\nbackend = "s3"\n\n[vault.s3]\nendpoint = "{s3.endpoint}"\n'
        f'access_key = "{s3.access_key}"\nsecret_key = "{s3.secret_key}"\n'
        'bucket = "pli-stock"\nsecure = false\n'
    )
    try:
        data = demo_dirs.copy(tmp_path_factory.mktemp("stock") / "var", config_extra=STOCK + vault)
        running = start_pli(data, env={"PLI_SMTP__MAX_MESSAGE_SIZE": str(MAX_SIZE)})
        try:
            yield running, s3
        finally:
            stop_pli(running)
    finally:
        s3.close()


def test_pli_serve_with_every_switch_off(stock_pli: tuple[RunningPli, MotoS3Server]) -> None:
    pli, s3 = stock_pli
    tuning = [e for e in pli.log_lines() if e.get("event") == "server.tuning"]
    assert tuning and all(tuning[-1][name] is False for name in TuningSettings.model_fields)

    body = "Compte rendu\r\n" + "ligne de compte rendu, assez longue pour peser.\r\n" * 40_000
    big = (f"From: {NURSE}\r\nTo: {GERIATRICIAN}\r\nSubject: CR stock\r\n\r\n{body}").encode()
    assert 1_500_000 < len(big) < MAX_SIZE  # over one TLS record, many DATA lines
    with smtplib.SMTP("127.0.0.1", pli.ports["smtp"], timeout=60) as s:
        s.starttls(context=pli.client_context())
        s.ehlo("ehpad.test")
        assert s.sendmail(NURSE, [GERIATRICIAN], big) == {}
        s.mail(NURSE)
        s.rcpt(GERIATRICIAN)
        code, msg = s.data(b"Subject: a\r\n\r\nfirst\n.\nMAIL FROM:<" + NURSE.encode() + b">\r\n")
        assert code == 554 and b"bare" in msg  # smuggling, on aiosmtpd's own DATA
        s.mail(NURSE)
        s.rcpt(GERIATRICIAN)
        code, msg = s.data((b"y" * 998 + b"\r\n") * (MAX_SIZE // 1000 + 10))
        assert (code, msg) == (552, b"5.3.4 Error: Too much mail data")  # aiosmtpd's words
        assert s.noop()[0] == 250  # the session goes on

    imap = imaplib.IMAP4("127.0.0.1", pli.ports["imap"], timeout=60)
    try:
        imap.starttls(ssl_context=pli.client_context())
        imap.login(GERIATRICIAN, pli.accounts[GERIATRICIAN])
        typ, data = imap.select("INBOX")
        assert typ == "OK"
        typ, fetched = imap.fetch((data[0] or b"1").decode(), "(BODY.PEEK[TEXT])")
        assert typ == "OK" and isinstance(fetched[0], tuple)
        assert fetched[0][1] == body.encode()  # through the S3 vault and back, whole
        imap.logout()
    finally:
        if imap.state != "LOGOUT":
            imap.shutdown()

    verify = pli.cli("audit", "verify")
    assert verify.returncode == 0, verify.stderr
    stored = Minio(
        s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=False
    ).list_objects("pli-stock", recursive=True)
    assert sum(1 for _ in stored) >= 1  # the message went to the S3 vault


async def test_each_switch_reaches_what_it_tunes(
    stock_pli: tuple[RunningPli, MotoS3Server],
) -> None:
    """The services pli serve builds from the same configuration use the stock paths."""
    pli, _ = stock_pli
    settings = load_settings(None, pli.data_dir, environ={})
    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        assert services.engine.url.drivername == "sqlite+aiosqlite"  # SQLAlchemy's dialect
        store = services.vault.store
        assert isinstance(store, S3BlobStore) and store._direct is False
