"""The request unit of work: committed before the response, rolled back on any error."""

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from bookstore_shared.db import Database, SessionDep, asyncpg_dsn
from bookstore_shared.errors import Conflict, install_error_handlers


@pytest.fixture
async def notes_client(service_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    conn = await asyncpg.connect(asyncpg_dsn(service_database_url))
    await conn.execute("CREATE SCHEMA IF NOT EXISTS shared_test")
    await conn.execute("CREATE TABLE IF NOT EXISTS shared_test.notes (body text PRIMARY KEY)")
    await conn.execute("TRUNCATE shared_test.notes")
    await conn.close()

    app = FastAPI()
    app.state.db = Database(service_database_url, pool_size=2)
    install_error_handlers(app)

    @app.post("/notes/{body}")
    async def add(body: str, session: SessionDep) -> dict[str, str]:
        await session.execute(text("INSERT INTO shared_test.notes VALUES (:b)"), {"b": body})
        if body.startswith("fail"):
            raise Conflict("refused after writing")
        return {"added": body}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client
    await app.state.db.dispose()


async def _notes(url: str) -> list[str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return [r["body"] for r in await conn.fetch("SELECT body FROM shared_test.notes")]
    finally:
        await conn.close()


async def test_session_commits_before_the_response_is_sent(
    notes_client: httpx.AsyncClient, service_database_url: str
) -> None:
    assert (await notes_client.post("/notes/kept")).status_code == 200
    # Read on another connection the moment the response arrives: the write is already there.
    assert await _notes(service_database_url) == ["kept"]


async def test_session_rolls_back_when_the_route_raises(
    notes_client: httpx.AsyncClient, service_database_url: str
) -> None:
    reply = await notes_client.post("/notes/fail-me")
    assert reply.status_code == 409
    assert await _notes(service_database_url) == []


async def test_failed_commit_is_an_error_response_not_a_success(
    notes_client: httpx.AsyncClient, service_database_url: str
) -> None:
    assert (await notes_client.post("/notes/twice")).status_code == 200
    # The duplicate key surfaces at commit time; the client must not be told it worked.
    reply = await notes_client.post("/notes/twice")
    assert reply.status_code == 500
    assert "Traceback" not in reply.text
    assert await _notes(service_database_url) == ["twice"]
