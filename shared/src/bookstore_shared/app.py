"""The one way an app behind the gateway is assembled, so all three look and behave alike."""

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import APIRouter, FastAPI

from bookstore_shared import faults, health
from bookstore_shared.bodylimit import BodyLimitMiddleware
from bookstore_shared.db import Database
from bookstore_shared.errors import PROBLEM_RESPONSES, document_problems, install_error_handlers
from bookstore_shared.identity import IdentityMiddleware, IdentityVerifier
from bookstore_shared.logging import configure_logging
from bookstore_shared.messaging import Broker
from bookstore_shared.settings import ServiceSettings
from bookstore_shared.telemetry import METRICS_PATH, Telemetry

OPEN_PATHS = ("/health/live", "/health/ready", METRICS_PATH)
MAX_BODY_BYTES = 1_048_576
REQUEST_ID_HEADER = "X-Request-ID"

# Runs inside the lifespan once the database and broker are up (consumers, relays, sweepers).
Extension = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def create_service_app(
    *,
    name: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    extension: Extension | None = None,
    larger_bodies: Mapping[tuple[str, str], int] | None = None,
) -> FastAPI:
    configure_logging(service=name, level=settings.log_level, json=settings.log_json)
    telemetry = Telemetry.from_settings(name, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        faults.announce()
        db = Database.from_settings(settings)
        telemetry.watch_database(db)
        broker = Broker(
            settings.amqp_url, namespace=settings.broker_namespace, tracer=telemetry.tracer
        )
        await broker.connect()
        app.state.db = db
        app.state.broker = broker
        app.state.health_checks = {"database": db.ping, "broker": broker.ping}
        try:
            async with extension(app) if extension else nullcontext():
                yield
        finally:
            await broker.close()
            await db.dispose()
            telemetry.shutdown()

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
    )
    app.state.settings = settings
    app.state.telemetry = telemetry
    install_error_handlers(app)
    document_problems(app)
    app.include_router(health.router)
    for router in routers:
        app.include_router(router)
    # Starlette runs the last-added middleware first: request id, body limit, identity.
    app.add_middleware(
        IdentityMiddleware,
        verifier=IdentityVerifier(settings.identity_secret.get_secret_value()),
        open_paths=OPEN_PATHS,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES, larger=larger_bodies)
    app.add_middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER)
    telemetry.instrument_app(app)  # outermost: spans and metrics see every answer
    return app
