from collections.abc import Awaitable, Callable

import httpx
import pytest

from bookstore_testing.shop import Shop
from bookstore_testing.stacks import DEMO_PASSWORD

SignIn = Callable[[str, str], Awaitable[dict[str, str]]]


@pytest.fixture(scope="session")
def sign_in(gateway: httpx.AsyncClient) -> SignIn:
    async def sign_in(email: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
        reply = await gateway.post(
            "/api/auth/token", data={"username": email, "password": password}
        )
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    return sign_in


@pytest.fixture(scope="session")
async def staff(sign_in: SignIn) -> dict[str, str]:
    return await sign_in("staff@bookstore.local")


@pytest.fixture(scope="session")
async def customer(sign_in: SignIn) -> dict[str, str]:
    return await sign_in("customer@bookstore.local")


@pytest.fixture(scope="session")
def shop(gateway: httpx.AsyncClient, staff: dict[str, str]) -> Shop:
    return Shop(gateway, staff)
