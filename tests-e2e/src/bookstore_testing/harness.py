"""Helpers the tests of every app use: run an app in-process, sign as someone, reset a schema."""

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bookstore_shared import migrations
from bookstore_shared.db import asyncpg_dsn
from bookstore_shared.identity import ASSERTION_HEADER, IdentitySigner

SAMPLE_ADDRESS = {
    "name": "Ann Reader",
    "line1": "1 High Street",
    "line2": None,
    "city": "Bath",
    "postal_code": "BA1 1AA",
    "country": "GB",
}


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client that talks to it in-process."""
    async with (
        LifespanManager(app, startup_timeout=30) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://app"
        ) as client,
    ):
        yield client


@asynccontextmanager
async def listening(app: FastAPI, *, ready_within: float = 30.0) -> AsyncIterator[str]:
    """The app served by uvicorn on a free loopback port, lifespan included; its base URL.
    For what must cross a real socket (the gateway's hop to an app, a browser)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(ready_within):
            while not server.started:
                if task.done():
                    raise RuntimeError(f"the app did not start: {task.exception()!r}")
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


def assertion_headers(
    secret: str, *, user_id: uuid.UUID | None = None, roles: Iterable[str] = ()
) -> dict[str, str]:
    """What the gateway would send for this caller."""
    token = IdentitySigner(secret).sign(user_id=user_id, roles=roles, request_id=None)
    return {ASSERTION_HEADER: token}


async def migrate(migrations_dir: Path, database_url: str, revision: str = "head") -> None:
    # Alembic's env runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(migrations.upgrade, migrations_dir, database_url, revision)


async def downgrade(migrations_dir: Path, database_url: str, revision: str = "base") -> None:
    await asyncio.to_thread(migrations.downgrade, migrations_dir, database_url, revision)


async def truncate_schema(database_url: str, schema: str, *, tries: int = 5) -> None:
    """Empty every table of the schema. The app under test keeps running (its relay, sweepers
    and pruning take locks table by table), so a TRUNCATE can deadlock with one of them:
    Postgres aborts one side, and the TRUNCATE is tried again."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> "
            "'alembic_version'",
            schema,
        )
        if not tables:
            return
        names = ", ".join(f'"{schema}"."{t["tablename"]}"' for t in tables)
        for attempt in range(1, tries + 1):
            try:
                await conn.execute(f"TRUNCATE {names} CASCADE")
                return
            except asyncpg.DeadlockDetectedError:
                if attempt == tries:
                    raise
    finally:
        await conn.close()


async def tables_in(database_url: str, schema: str) -> set[str]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def schema_drift(database_url: str, schema: str, metadata: MetaData) -> list[object]:
    """What autogenerate would still add or change: empty when migrations match the models."""

    def compare(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts=migrations.schema_options(schema))
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def assert_migrations_round_trip(
    database_url: str, migrations_dir: Path, schema: str, metadata: MetaData
) -> None:
    """Empty → head → base → head, and head always matches the models."""
    await migrate(migrations_dir, database_url)
    assert await schema_drift(database_url, schema, metadata) == []
    head_tables = await tables_in(database_url, schema)
    assert len(head_tables) > 1, head_tables

    await downgrade(migrations_dir, database_url)
    assert await tables_in(database_url, schema) == {"alembic_version"}

    await migrate(migrations_dir, database_url)
    assert await tables_in(database_url, schema) == head_tables
    assert await schema_drift(database_url, schema, metadata) == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def assert_problem(reply: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The reply is a problem document (RFC 9457) with this status (and code), and its body."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = reply.json()
    assert problem["status"] == status
    assert {"type", "title", "code", "request_id"} <= problem.keys()
    if code:
        assert problem["code"] == code
    return problem
