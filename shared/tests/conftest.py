"""A schema of a test's own, with the tables it names and the function guarded writes call."""

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from sqlalchemy import Table, text

from bookstore_shared.db import Database
from bookstore_shared.migrations import concurrent_change_function

ScratchSchema = Callable[[str, Sequence[Table]], contextlib.AbstractAsyncContextManager[Database]]


@pytest.fixture
def scratch_schema(service_database_url: str) -> ScratchSchema:
    @contextlib.asynccontextmanager
    async def scratch(schema: str, tables: Sequence[Table]) -> AsyncIterator[Database]:
        database = Database(service_database_url, pool_size=3)
        async with database.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
            for table in tables:
                await conn.run_sync(table.create)
            await conn.execute(text(concurrent_change_function(schema)))
        try:
            yield database
        finally:
            async with database.engine.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            await database.dispose()

    return scratch
