"""ADMIN_EMAIL / ADMIN_PASSWORD: the first admin of a stack without demo data."""

import asyncio

import httpx
import pytest
from pydantic import ValidationError

from bookstore_shared.db import Database
from bookstore_testing.harness import serve_app
from gateway.config import Settings
from gateway.main import create_app
from gateway.models import Role
from gateway.security import Passwords
from gateway.seed import ensure_admin
from gateway.service import find_user, register_user


def _with_admin(settings: Settings, email: str, password: str) -> Settings:
    return Settings.model_validate(
        {**settings.model_dump(), "admin_email": email, "admin_password": password}
    )


async def _role(db: Database, email: str) -> tuple[Role, bool] | None:
    async with db.sessions() as session:
        user = await find_user(session, email=email)
        return None if user is None else (user.role, user.is_active)


async def test_start_up_creates_the_admin_who_can_sign_in(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    settings = _with_admin(gateway_settings, "Boss@Example.com", "a-long-passphrase")
    async with serve_app(create_app(settings)) as gateway:
        token = await gateway.post(
            "/api/auth/token",
            data={"username": "boss@example.com", "password": "a-long-passphrase"},
        )
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert (await gateway.get("/api/users", headers=headers)).status_code == 200


async def test_existing_customer_is_promoted_and_keeps_their_password(
    gateway_settings: Settings, client: httpx.AsyncClient
) -> None:
    db = Database(gateway_settings.database_url, pool_size=2)
    passwords = Passwords(concurrency=1)
    try:
        async with db.unit_of_work() as session:
            await register_user(
                session, passwords=passwords, email="ann@example.com", password="own-passphrase"
            )
        settings = _with_admin(gateway_settings, "ann@example.com", "another-passphrase")
        assert await ensure_admin(db, passwords, settings) == "admin ann@example.com promoted"
        assert await _role(db, "ann@example.com") == (Role.ADMIN, True)
        assert await ensure_admin(db, passwords, settings) == "admin ann@example.com present"
        reply = await client.post(
            "/api/auth/token", data={"username": "ann@example.com", "password": "own-passphrase"}
        )
        assert reply.status_code == 200, reply.text
    finally:
        await db.dispose()


async def test_replicas_starting_at_once_make_one_admin(gateway_settings: Settings) -> None:
    db = Database(gateway_settings.database_url, pool_size=4)
    passwords = Passwords(concurrency=4)
    settings = _with_admin(gateway_settings, "root@example.com", "a-long-passphrase")
    try:
        outcomes = await asyncio.gather(*(ensure_admin(db, passwords, settings) for _ in range(4)))
        assert outcomes.count("admin root@example.com created") == 1
        assert await _role(db, "root@example.com") == (Role.ADMIN, True)
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    "admin",
    [
        {"admin_email": "root@example.com"},
        {"admin_password": "a-long-passphrase"},
        {"admin_email": "root@example.com", "admin_password": "short"},
    ],
)
def test_half_or_weak_admin_settings_are_refused(
    gateway_settings: Settings, admin: dict[str, str]
) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({**gateway_settings.model_dump(), **admin})


def test_empty_admin_settings_mean_none(gateway_settings: Settings) -> None:
    settings = _with_admin(gateway_settings, "", "")
    assert (settings.admin_email, settings.admin_password) == (None, None)
