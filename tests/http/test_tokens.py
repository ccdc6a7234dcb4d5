"""API tokens: the CLI (create prints once, list, revoke), digests at rest, the migration."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import Connection, select

from gateway.base.db import create_engine
from gateway.base.errors import InvalidInput, NotFound, PliError, Refused, UsageError
from gateway.cli import token as cli_token
from gateway.cli.main import build_parser
from gateway.mailstore.tables import api_token
from gateway.mailstore.tokens import TokenService, split_token
from tests.http.conftest import CABINET, DOCTOR, DPI, Api, make_settings


def _parse(*argv: str) -> argparse.Namespace:
    return build_parser("token").parse_args(["token", *argv])


async def _cli(data_dir: Path, *argv: str) -> int:
    settings = make_settings(data_dir)
    engine = create_engine(settings.database_url())
    try:
        return await cli_token.run(_parse(*argv), settings, engine)
    finally:
        await engine.dispose()


async def test_cli_create_list_revoke(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        await _cli(
            data_dir,
            "create",
            "--mailbox",
            DPI.upper(),
            "--scope",
            "send",
            "--scope",
            "read",
            "--expires",
            "30",
            "--label",
            "DPI Arras",
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    parts = split_token(token)
    assert parts is not None
    token_id, secret = parts
    settings = make_settings(data_dir)
    engine = create_engine(settings.database_url())
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(select(api_token).where(api_token.c.id == token_id))).one()
        assert row.mailbox == DPI and row.scopes == "send read"
        assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in str(row._asdict())
        info = await TokenService(engine).check(token)
        assert info is not None and info.expires_at is not None
        assert info.expires_at - info.created_at == dt.timedelta(days=30)
    finally:
        await engine.dispose()

    assert await _cli(data_dir, "list") == 0
    listing = capsys.readouterr().out
    assert token_id in listing and "active" in listing and secret not in listing
    assert await _cli(data_dir, "revoke", token_id) == 0
    capsys.readouterr()
    assert await _cli(data_dir, "list", "--format", "json") == 0
    assert '"state": "revoked"' in capsys.readouterr().out
    with pytest.raises(NotFound, match=f"no active token {token_id}"):
        await _cli(data_dir, "revoke", token_id)


async def test_cli_refuses_bad_mailboxes(data_dir: Path) -> None:
    cases: list[tuple[list[str], type[PliError]]] = [
        (["--mailbox", DOCTOR, "--scope", "read"], Refused),  # a person's own mailbox
        (["--mailbox", "nobody@ch-arras.mssante.fr", "--scope", "read"], NotFound),
        (["--mailbox", "dpi@elsewhere.example", "--scope", "read"], InvalidInput),
        (["--mailbox", "not-an-address", "--scope", "read"], InvalidInput),
        (["--scope", "send"], UsageError),  # the command line lacks --mailbox (exit 2)
        (["--scope", "audit", "--expires", "0"], UsageError),
    ]
    for argv, error in cases:
        with pytest.raises(error) as raised:
            await _cli(data_dir, "create", *argv)
        assert type(raised.value) is error, argv
    # An auditor's token needs no mailbox.
    assert await _cli(data_dir, "create", "--scope", "audit") == 0


async def test_expired_and_malformed_tokens(api: Api) -> None:
    tokens = TokenService(api.services.engine)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    _, old = await tokens.create(CABINET, {"read"}, expires_days=1, now=past)
    assert await tokens.check(old) is None
    assert await tokens.check("pli_zz.zz") is None
    with pytest.raises(ValueError):
        await tokens.create(DPI, {"admin"})


async def test_migration_matches_the_table(data_dir: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import MetaData

    from gateway.mailstore.tables import api_token as table

    metadata = MetaData()  # the token table alone: the mailstore's other tables have their own test
    table.to_metadata(metadata)

    settings = make_settings(data_dir)
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.database_url())
        stack.push_async_callback(engine.dispose)

        def only_ours(name: str | None, type_: str, parent: object) -> bool:
            return type_ != "table" or name == "api_token"

        def diff(sync_conn: Connection) -> list[object]:
            ctx = MigrationContext.configure(
                sync_conn, opts={"compare_type": True, "include_name": only_ours}
            )
            return list(compare_metadata(ctx, metadata))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
