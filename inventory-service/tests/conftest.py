import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import inventory
from bookstore_testing.harness import assertion_headers, migrate, serve_app, truncate_schema
from inventory.config import Settings
from inventory.main import create_app
from inventory.models import SCHEMA

MIGRATIONS = Path(inventory.__file__).parent / "migrations"


@pytest.fixture(scope="session")
async def client(service_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    await migrate(MIGRATIONS, service_settings["database_url"])
    async with serve_app(create_app(Settings(**service_settings))) as c:
        yield c


@pytest.fixture(autouse=True)
async def _empty_schema(service_database_url: str) -> AsyncIterator[None]:
    yield
    await truncate_schema(service_database_url, SCHEMA)


@pytest.fixture
def anonymous(identity_secret: str) -> dict[str, str]:
    return assertion_headers(identity_secret)


@pytest.fixture
def anonymous_by_default(client: httpx.AsyncClient, anonymous: dict[str, str]) -> Iterator[None]:
    """Requests without a caller of their own come as the gateway sends anonymous ones."""
    client.headers.update(anonymous)
    yield
    for name in anonymous:
        del client.headers[name]


@pytest.fixture
def customer(identity_secret: str) -> dict[str, str]:
    return assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["customer"])


@pytest.fixture
def staff(identity_secret: str) -> dict[str, str]:
    return assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["staff"])


@pytest.fixture
def create_book(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def create(**overrides: Any) -> dict[str, Any]:
        reply = await client.post("/books", json=book_body(**overrides), headers=staff)
        assert reply.status_code == 201, reply.text
        book: dict[str, Any] = reply.json()
        return book

    return create


def book_body(**overrides: Any) -> dict[str, Any]:
    return {
        "isbn": "9780141439518",
        "title": "Pride and Prejudice",
        "author": "Jane Austen",
        "category": "Classics",
        "price_cents": 899,
        "stock": 12,
        "description": "A novel of manners.",
        **overrides,
    }
