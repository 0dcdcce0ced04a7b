"""Alembic, one tree per app, every table and the version table inside the app's own schema."""

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, op
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import Column, DateTime, MetaData, Table, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bookstore_shared.settings import ServiceSettings


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(migrations_dir: Path, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(migrations_dir, database_url), revision)


def downgrade(migrations_dir: Path, database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(migrations_dir, database_url), revision)


def schema_options(schema: str) -> dict[str, Any]:
    """Alembic options that confine it to one app's schema, on the database and model sides."""

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        return name == schema if type_ == "schema" else True

    def include_object(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        table = obj if isinstance(obj, Table) else getattr(obj, "table", None)
        return not isinstance(table, Table) or table.schema == schema

    return {
        "version_table_schema": schema,
        "include_schemas": True,
        "include_name": include_name,
        "include_object": include_object,
        "compare_type": True,
    }


def run_migrations(context: EnvironmentContext, *, schema: str, metadata: MetaData) -> None:
    """The body of every app's `env.py`."""
    # Set by `upgrade()`; a developer running the alembic CLI gets the app's configured URL.
    url = context.config.get_main_option("sqlalchemy.url") or ServiceSettings().database_url
    options = {"target_metadata": metadata, **schema_options(schema)}

    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    def migrate(connection: Connection) -> None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.begin() as conn:
                # The version table lives in the schema, so the schema must exist first.
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            async with engine.connect() as conn:
                await conn.run_sync(migrate)
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(main())


# --- Steps every app's history shares (the outbox table is the same in every schema) -------


def _outbox_unpublished_index(schema: str, where: str) -> None:
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=schema)
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["created_at"],
        schema=schema,
        postgresql_where=text(where),
    )


def add_outbox_retry_and_parking(schema: str) -> None:
    """Outbox rows the broker refuses wait (`next_attempt_at`) and are parked at the last
    (`parked_at`); parked rows leave the poller's index. Revision 0003 of every app."""
    for column in ("next_attempt_at", "parked_at"):
        op.add_column(
            "outbox", Column(column, DateTime(timezone=True), nullable=True), schema=schema
        )
    _outbox_unpublished_index(schema, "published_at IS NULL AND parked_at IS NULL")


def drop_outbox_retry_and_parking(schema: str) -> None:
    _outbox_unpublished_index(schema, "published_at IS NULL")
    op.drop_column("outbox", "parked_at", schema=schema)
    op.drop_column("outbox", "next_attempt_at", schema=schema)


def concurrent_change_function(schema: str) -> str:
    """`<schema>.concurrent_change(what)`: fails the statement that calls it with a
    serialization failure (40001), so that a guarded write whose guard no longer holds writes
    nothing and its handler runs again (`bookstore_shared.writes`)."""
    return (
        f'CREATE OR REPLACE FUNCTION "{schema}".concurrent_change(what text) RETURNS boolean '
        "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '% changed since it was read', what "
        "USING ERRCODE = 'serialization_failure'; END $$"
    )


def create_concurrent_change(schema: str) -> None:
    """Every app's revision that first guards a write."""
    op.execute(concurrent_change_function(schema))


def drop_concurrent_change(schema: str) -> None:
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".concurrent_change(text)')
