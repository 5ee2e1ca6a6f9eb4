"""Alembic migrations per service: each in its own schema with its own version table, safe when
several replicas start at once (a Postgres advisory lock lets one migrate while the others wait)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config

from ticketmesh.db import conninfo


def _sqlalchemy_url(url: str) -> str:
    return conninfo(url).replace("postgresql://", "postgresql+psycopg://", 1)


def upgrade(url: str, schema: str, migrations: Path) -> None:
    """Brings `schema` to the newest revision in `migrations`."""
    engine = sa.create_engine(_sqlalchemy_url(url), poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            # Held until commit: a second replica waits here, then finds nothing left to do.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"migrate:{schema}"})
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            conn.execute(sa.text(f'SET LOCAL search_path TO "{schema}"'))
            config = Config()
            config.set_main_option("script_location", str(migrations))
            config.attributes["connection"] = conn
            config.attributes["schema"] = schema
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def run_env() -> None:
    """The body of every service's migrations/env.py: online mode on the connection we pass in."""
    conn = context.config.attributes["connection"]
    schema = context.config.attributes["schema"]
    context.configure(connection=conn, version_table_schema=schema, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
