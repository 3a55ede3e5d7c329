"""Alembic environment: runs on the sync connection handed over in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table
from sqlalchemy.engine import Connection

from adapters.mysql.migrations import VERSION_COLUMN_LENGTH, VERSION_TABLE


def _ensure_version_table(connection: Connection) -> None:
    """Create `alembic_version` with room for our long revision ids before Alembic does."""
    table = Table(
        VERSION_TABLE,
        MetaData(),
        Column("version_num", String(VERSION_COLUMN_LENGTH), nullable=False),
        PrimaryKeyConstraint("version_num"),
    )
    table.create(connection, checkfirst=True)


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "run migrations through adapters.mysql.schema_upgrade (needs a connection)"
        )
    _ensure_version_table(connection)
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
