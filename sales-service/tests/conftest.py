import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import sales
from bookstore_shared.db import Database
from bookstore_testing.harness import SAMPLE_ADDRESS, migrate, serve_app, truncate_schema
from sales.config import Settings
from sales.main import create_app
from sales.models import SCHEMA, Order, OrderLine, OrderStatus

MIGRATIONS = Path(sales.__file__).parent / "migrations"


@pytest.fixture(scope="session")
async def client(service_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    await migrate(MIGRATIONS, service_settings["database_url"])
    async with serve_app(create_app(Settings(**service_settings))) as c:
        yield c


@pytest.fixture(autouse=True)
async def _empty_schema(service_database_url: str) -> AsyncIterator[None]:
    yield
    await truncate_schema(service_database_url, SCHEMA)


PlaceOrder = Callable[..., Awaitable[Order]]


@pytest.fixture
async def place_order(
    client: httpx.AsyncClient, service_database_url: str
) -> AsyncIterator[PlaceOrder]:
    """Writes an order as the saga would (there is no public route that creates one directly)."""
    db = Database(service_database_url, pool_size=1)

    async def place(customer_id: uuid.UUID, status: OrderStatus = OrderStatus.PENDING) -> Order:
        async with db.unit_of_work() as session:
            order = Order(
                customer_id=customer_id,
                status=status,
                total_cents=1798,
                shipping_address=SAMPLE_ADDRESS,
                card_last4="4242",
            )
            order.lines = [
                OrderLine(book_id=uuid.uuid4(), title="Emma", unit_price_cents=899, quantity=2)
            ]
            session.add(order)
        return order

    yield place
    await db.dispose()
