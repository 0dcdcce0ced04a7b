"""Retention deletes only what is older than its keep time (and matches), in batches."""

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table

from bookstore_shared.db import Database, asyncpg_dsn
from bookstore_shared.retention import Retention, prune

NOTES = Table(
    "history",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
    schema="retention_test",
)


@pytest.fixture
async def history(service_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """3,500 rows of ten days ago, 20 of an hour ago; kinds alternate 'a' and 'b'."""
    conn = await asyncpg.connect(asyncpg_dsn(service_database_url))
    await conn.execute("CREATE SCHEMA IF NOT EXISTS retention_test")
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS retention_test.history "
        "(id int PRIMARY KEY, kind text NOT NULL, written_at timestamptz NOT NULL)"
    )
    await conn.execute("TRUNCATE retention_test.history")
    await conn.execute(
        "INSERT INTO retention_test.history "
        "SELECT i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, "
        "now() - CASE WHEN i <= 3500 THEN interval '10 days' ELSE interval '1 hour' END "
        "FROM generate_series(1, 3520) AS i"
    )
    yield conn
    await conn.execute("DROP SCHEMA retention_test CASCADE")
    await conn.close()


async def test_prune_deletes_old_rows_in_batches_and_keeps_recent_ones(
    history: asyncpg.Connection, service_database_url: str
) -> None:
    db = Database(service_database_url, pool_size=1)
    rule = Retention(table=NOTES, age=NOTES.c.written_at, keep=timedelta(days=7))
    try:
        assert await prune(db, [rule], batch=1000) == {"retention_test.history": 3500}
        assert await prune(db, [rule], batch=1000) == {"retention_test.history": 0}
    finally:
        await db.dispose()
    assert await history.fetchval("SELECT count(*) FROM retention_test.history") == 20


async def test_prune_stops_after_its_batches_and_goes_on_next_round(
    history: asyncpg.Connection, service_database_url: str
) -> None:
    db = Database(service_database_url, pool_size=1)
    rule = Retention(table=NOTES, age=NOTES.c.written_at, keep=timedelta(days=7))
    try:
        first = await prune(db, [rule], batch=1000, max_batches=2)
        second = await prune(db, [rule], batch=1000, max_batches=2)
    finally:
        await db.dispose()
    assert (first, second) == ({"retention_test.history": 2000}, {"retention_test.history": 1500})


async def test_prune_deletes_only_rows_that_match(
    history: asyncpg.Connection, service_database_url: str
) -> None:
    db = Database(service_database_url, pool_size=1)
    rule = Retention(
        table=NOTES, age=NOTES.c.written_at, keep=timedelta(days=7), only=NOTES.c.kind == "a"
    )
    try:
        await prune(db, [rule])
    finally:
        await db.dispose()
    kinds = await history.fetch(
        "SELECT kind, count(*) AS n FROM retention_test.history GROUP BY kind ORDER BY kind"
    )
    assert [(r["kind"], r["n"]) for r in kinds] == [("a", 10), ("b", 1760)]
