import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import delivery
from bookstore_shared.db import Database
from bookstore_testing.harness import SAMPLE_ADDRESS, migrate, serve_app, truncate_schema
from delivery.config import Settings
from delivery.main import create_app
from delivery.models import SCHEMA, Delivery

MIGRATIONS = Path(delivery.__file__).parent / "migrations"


@pytest.fixture(scope="session")
async def client(service_settings: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    await migrate(MIGRATIONS, service_settings["database_url"])
    async with serve_app(create_app(Settings(**service_settings))) as c:
        yield c


@pytest.fixture(autouse=True)
async def _empty_schema(service_database_url: str) -> AsyncIterator[None]:
    yield
    await truncate_schema(service_database_url, SCHEMA)


ScheduleDelivery = Callable[[uuid.UUID], Awaitable[Delivery]]


@pytest.fixture
async def schedule_delivery(
    client: httpx.AsyncClient, service_database_url: str
) -> AsyncIterator[ScheduleDelivery]:
    """Writes a delivery as the saga would (no public route creates one)."""
    db = Database(service_database_url, pool_size=1)

    async def schedule(customer_id: uuid.UUID) -> Delivery:
        async with db.unit_of_work() as session:
            row = Delivery(order_id=uuid.uuid4(), customer_id=customer_id, address=SAMPLE_ADDRESS)
            session.add(row)
        return row

    yield schedule
    await db.dispose()
