from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import select

from bookstore_shared.app import create_service_app
from bookstore_shared.background import every
from bookstore_shared.consumer import run_messaging
from bookstore_shared.db import Database
from bookstore_shared.messaging import SALES_CATALOG, SALES_PAYMENTS
from bookstore_shared.outbox import Outbox
from bookstore_shared.retention import Retention
from sales import cart, deadlines, reports
from sales.config import Settings, get_settings
from sales.consumers import queues
from sales.models import INBOX, OUTBOX, IdempotencyKey, Order, OrderEvent, SagaState, SagaStep
from sales.payments import FakeCardProvider
from sales.routes import router
from sales.watch import OrderWatch


def retention(settings: Settings) -> list[Retention]:
    keys, steps, orders = IdempotencyKey.__table__, SagaStep.__table__, Order.__table__
    events = OrderEvent.__table__
    return [
        Retention(
            table=events,  # type: ignore[arg-type]
            age=events.c.occurred_at,
            keep=timedelta(days=settings.retention_order_events_days),
        ),
        Retention(
            table=keys,  # type: ignore[arg-type]
            age=keys.c.created_at,
            keep=timedelta(hours=settings.retention_idempotency_hours),
        ),
        Retention(
            table=steps,  # type: ignore[arg-type]
            age=steps.c.answered_at,
            keep=timedelta(days=settings.retention_saga_steps_days),
            only=steps.c.order_id.in_(
                select(orders.c.id).where(orders.c.saga_state == SagaState.COMPLETED)
            ),
        ),
    ]


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
            await deadlines.handle_overdue_steps(
                db,
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
                queues=queues(
                    outbox=outbox, step_timeout=step_timeout, provider=provider, watch=watch
                ),
                light=(SALES_PAYMENTS, SALES_CATALOG),
                retention=retention(settings),
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
        routers=[router, cart.router, reports.router],
        extension=messaging,
    )
