from fastapi import FastAPI

from bookstore_shared.app import create_service_app
from inventory.config import Settings, get_settings
from inventory.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        name="inventory",
        title="Inventory",
        description="The catalog and the stock.",
        settings=settings or get_settings(),
        routers=[router],
    )
