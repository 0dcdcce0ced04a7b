from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from bookstore_shared.app import create_service_app
from bookstore_shared.background import every
from bookstore_shared.consumer import run_messaging
from bookstore_shared.db import Database
from bookstore_shared.messaging import INVENTORY_COMMANDS
from inventory import imports, reviews, stock, summaries
from inventory.config import Settings, get_settings
from inventory.consumers import handlers
from inventory.models import INBOX
from inventory.routes import reports, router
from inventory.service import outbox


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def messaging(app: FastAPI) -> AsyncIterator[None]:
        db: Database = app.state.db

        async def sweep() -> None:
            async with db.transaction() as tx:
                for message in await stock.expire_reservations(tx):
                    await outbox.add(tx, message)

        lease = timedelta(seconds=settings.reservation_lease_seconds)
        async with (
            run_messaging(
                app,
                outbox=outbox,
                inbox=INBOX,
                queues={INVENTORY_COMMANDS: handlers(lease=lease)},
            ),
            every(settings.reservation_sweep_seconds, sweep, "reservation-sweeper"),
            summaries.summaries(app, settings),
        ):
            yield

    return create_service_app(
        name="inventory",
        title="Inventory",
        description="The catalog and the stock.",
        settings=settings,
        routers=[router, reviews.router, summaries.router, reports],
        larger_bodies={("POST", "/books/import"): imports.MAX_BYTES},
        extension=messaging,
    )
