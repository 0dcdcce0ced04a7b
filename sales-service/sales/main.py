from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from bookstore_shared.app import create_service_app
from bookstore_shared.background import every
from bookstore_shared.consumer import run_messaging
from bookstore_shared.db import Database
from bookstore_shared.outbox import Outbox
from sales import saga
from sales.config import Settings, get_settings
from sales.consumers import queues
from sales.models import INBOX, OUTBOX
from sales.payments import FakeCardProvider
from sales.routes import router
from sales.watch import OrderWatch


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    outbox = Outbox(OUTBOX)
    provider = FakeCardProvider()
    step_timeout = timedelta(seconds=settings.saga_step_timeout_seconds)

    @asynccontextmanager
    async def messaging(app: FastAPI) -> AsyncIterator[None]:
        db: Database = app.state.db
        app.state.outbox = outbox
        app.state.card_provider = provider
        app.state.step_timeout = step_timeout

        async def sweep_overdue() -> None:
            async with db.unit_of_work() as session:
                await saga.handle_overdue_steps(
                    session,
                    outbox=outbox,
                    step_timeout=step_timeout,
                    max_attempts=settings.saga_step_max_attempts,
                )

        async with (
            OrderWatch(settings.database_url) as watch,
            run_messaging(
                app,
                outbox=outbox,
                inbox=INBOX,
                queues=queues(outbox=outbox, step_timeout=step_timeout, provider=provider),
            ),
            every(settings.saga_sweep_seconds, sweep_overdue, "saga-deadlines"),
        ):
            app.state.watch = watch
            yield

    return create_service_app(
        name="sales",
        title="Sales",
        description="Carts, orders, payments and the order saga.",
        settings=settings,
        routers=[router],
        extension=messaging,
    )
