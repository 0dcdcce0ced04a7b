from fastapi import FastAPI

from bookstore_shared.app import create_service_app
from sales.config import Settings, get_settings
from sales.routes import router


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        name="sales",
        title="Sales",
        description="Carts, orders, payments and the order saga.",
        settings=settings or get_settings(),
        routers=[router],
    )
