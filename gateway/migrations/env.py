"""Alembic environment: one target made of every package's own MetaData.

pli always hands a live connection in ``config.attributes`` (see gateway/base/db.py),
so migrations run inside the caller's event loop on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from gateway.migrations import all_metadata

config = context.config
target_metadata = all_metadata()


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is None:  # `alembic revision --autogenerate` from a shell, on a scratch SQLite file
        url = config.get_main_option("sqlalchemy.url") or "sqlite:///alembic-scratch.db"
        with create_engine(url).connect() as c:
            context.configure(connection=c, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
            c.commit()
        return
    context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
