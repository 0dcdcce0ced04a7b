from fastapi import FastAPI

from bookstore_shared.app import create_service_app
from delivery.config import Settings, get_settings
from delivery.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        name="delivery",
        title="Delivery",
        description="Deliveries and their tracking.",
        settings=settings or get_settings(),
        routers=[router],
    )
