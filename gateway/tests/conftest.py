from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

import gateway
from bookstore_testing.echo import echo_app
from bookstore_testing.harness import free_port, listening, migrate, serve_app, truncate_schema
from gateway.config import Settings
from gateway.main import create_app
from gateway.models import SCHEMA

MIGRATIONS = Path(gateway.__file__).parent / "migrations"


@pytest.fixture(scope="session")
async def echo_url() -> AsyncIterator[str]:
    async with listening(echo_app) as url:
        yield url


@pytest.fixture(scope="session")
def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def gateway_settings(service_settings: dict[str, Any], echo_url: str, closed_url: str) -> Settings:
    return Settings(
        **service_settings,
        inventory_url=echo_url,
        sales_url=echo_url,
        delivery_url=closed_url,  # an app that is down
        jwt_secret="test-jwt-secret-" + "x" * 64,
    )


@pytest.fixture(scope="session")
async def client(gateway_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await migrate(MIGRATIONS, gateway_settings.database_url)
    async with serve_app(create_app(gateway_settings)) as c:
        yield c


@pytest.fixture(autouse=True)
async def _empty_schema(service_database_url: str) -> AsyncIterator[None]:
    yield
    await truncate_schema(service_database_url, SCHEMA)


async def _signed_in_as(
    client: httpx.AsyncClient, settings: Settings, role: str, email: str
) -> str:
    """A token of a new account with this role (staff and admins cannot register: they are
    made in the database, as the seed does)."""
    from bookstore_shared.db import Database
    from gateway.models import Role
    from gateway.security import Passwords
    from gateway.service import register_user

    db = Database(settings.database_url, pool_size=1)
    async with db.unit_of_work() as session:
        await register_user(
            session,
            passwords=Passwords(concurrency=1),
            email=email,
            password="a-long-passphrase",
            role=Role(role),
        )
    await db.dispose()
    reply = await client.post(
        "/api/auth/token", data={"username": email, "password": "a-long-passphrase"}
    )
    token: str = reply.json()["access_token"]
    return token


@pytest.fixture
async def admin(client: httpx.AsyncClient, gateway_settings: Settings) -> dict[str, str]:
    """An admin's headers."""
    token = await _signed_in_as(client, gateway_settings, "admin", "root@example.com")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def staff_token(client: httpx.AsyncClient, gateway_settings: Settings) -> str:
    return await _signed_in_as(client, gateway_settings, "staff", "clerk@example.com")


@pytest.fixture
async def customer_token(client: httpx.AsyncClient) -> str:
    await client.post(
        "/api/auth/register", json={"email": "ann@example.com", "password": "correct-horse"}
    )
    reply = await client.post(
        "/api/auth/token", data={"username": "ann@example.com", "password": "correct-horse"}
    )
    token: str = reply.json()["access_token"]
    return token


Forge = Callable[..., str]


@pytest.fixture
def forge(customer_token: str, gateway_settings: Settings) -> Forge:
    """A customer's real access token re-signed with some claims changed (or removed, with
    None), another algorithm or another key. Unchanged, it is accepted; so a refusal of a
    forgery is due to what was changed, and nothing else."""

    def forge_token(
        *, algorithm: str | None = "HS256", key: str | None = None, **changes: object
    ) -> str:
        claims = jwt.decode(customer_token, options={"verify_signature": False})
        claims.update(changes)
        claims = {name: value for name, value in claims.items() if value is not None}
        secret = key or gateway_settings.jwt_secret.get_secret_value()
        return jwt.encode(claims, secret if algorithm != "none" else None, algorithm=algorithm)

    return forge_token
