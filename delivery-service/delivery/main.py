from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bookstore_shared.app import create_service_app
from bookstore_shared.consumer import run_messaging
from bookstore_shared.messaging import DELIVERY_COMMANDS
from bookstore_shared.outbox import Outbox
from delivery.config import Settings, get_settings
from delivery.consumers import handlers
from delivery.models import INBOX, OUTBOX
from delivery.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    outbox = Outbox(OUTBOX)

    @asynccontextmanager
    async def messaging(app: FastAPI) -> AsyncIterator[None]:
        app.state.outbox = outbox
        queues = {DELIVERY_COMMANDS: handlers(served_countries=settings.served_countries)}
        async with run_messaging(app, outbox=outbox, inbox=INBOX, queues=queues):
            yield

    return create_service_app(
        name="delivery",
        title="Delivery",
        description="Deliveries and their tracking.",
        settings=settings,
        routers=[router],
        extension=messaging,
    )
