"""The bookstore as its users see it, for end-to-end tests: only public HTTP, via the gateway."""

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from stdnum import ean

T = TypeVar("T")

OK_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
NO_FUNDS_CARD = "4000000000009995"


def random_isbn() -> str:
    body = "979" + "".join(random.choices("0123456789", k=9))  # noqa: S311 - test data
    return body + ean.calc_check_digit(body)


class Shop:
    """The bookstore as its users see it: only public HTTP, through the gateway."""

    def __init__(self, gateway: httpx.AsyncClient, staff: dict[str, str]) -> None:
        self.gateway = gateway
        self.staff = staff

    async def new_book(self, *, stock: int, price_cents: int = 1000) -> str:
        reply = await self.gateway.post(
            "/api/books",
            json={
                "isbn": random_isbn(),
                "title": f"Test Book {uuid.uuid4().hex[:8]}",
                "author": "Test Author",
                "category": "Testing",
                "price_cents": price_cents,
                "stock": stock,
            },
            headers=self.staff,
        )
        assert reply.status_code == 201, reply.text
        book_id: str = reply.json()["id"]
        return book_id

    async def counts(self, book_id: str) -> tuple[int, int, int]:
        book = (await self.gateway.get(f"/api/books/{book_id}", headers=self.staff)).json()
        return book["available"], book["reserved"], book["sold"]

    async def new_customer(self) -> dict[str, str]:
        email = f"c-{uuid.uuid4().hex[:12]}@example.com"
        registered = await self.gateway.post(
            "/api/auth/register", json={"email": email, "password": "a-long-passphrase"}
        )
        assert registered.status_code == 201, registered.text
        token = await self.gateway.post(
            "/api/auth/token", data={"username": email, "password": "a-long-passphrase"}
        )
        return {"Authorization": f"Bearer {token.json()['access_token']}"}

    async def place_order(
        self,
        customer: dict[str, str],
        items: list[tuple[str, int]],
        *,
        card: str = OK_CARD,
        country: str = "GB",
        wait: int | None = 15,
        key: str | None = None,
    ) -> httpx.Response:
        headers = dict(customer)
        if wait is not None:
            headers["Prefer"] = f"wait={wait}"
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.gateway.post(
            "/api/orders",
            json=order_body(items, card=card, country=country),
            headers=headers,
            timeout=wait + 10 if wait else 10,
        )

    async def order(self, order_id: str, who: dict[str, str]) -> dict[str, Any]:
        reply = await self.gateway.get(f"/api/orders/{order_id}", headers=who)
        assert reply.status_code == 200, reply.text
        order: dict[str, Any] = reply.json()
        return order

    async def saga(self, order_id: str, who: dict[str, str]) -> dict[str, Any]:
        saga: dict[str, Any] = (
            await self.gateway.get(f"/api/orders/{order_id}/saga", headers=who)
        ).json()
        return saga

    async def step_reaching(
        self, order_id: str, who: dict[str, str], name: str, status: str, *, within: float
    ) -> dict[str, Any]:
        """The saga step `name` of the order, once it has reached `status`."""

        async def reached() -> dict[str, Any] | None:
            saga = await self.saga(order_id, who)
            step = next((s for s in saga["steps"] if s["name"] == name), None)
            return step if step and step["status"] == status else None

        return await eventually(reached, within=within, what=f"{name} to be {status}")

    async def delivery_of(self, order_id: str) -> str:
        """The id of the order's delivery (as staff see it)."""
        found = (
            await self.gateway.get(f"/api/deliveries?order_id={order_id}", headers=self.staff)
        ).json()
        delivery_id: str = found["data"][0]["id"]
        return delivery_id

    async def advance_delivery(self, delivery_id: str, status: str) -> httpx.Response:
        return await self.gateway.post(
            f"/api/deliveries/{delivery_id}/status", json={"status": status}, headers=self.staff
        )

    async def wait_final(
        self, order_id: str, who: dict[str, str], within: float = 30
    ) -> dict[str, Any]:
        async def final() -> dict[str, Any] | None:
            saga = await self.saga(order_id, who)
            return await self.order(order_id, who) if saga["saga_state"] == "completed" else None

        return await eventually(final, within=within, what=f"order {order_id} to be final")


def order_body(
    items: list[tuple[str, int]], *, card: str = OK_CARD, country: str = "GB"
) -> dict[str, Any]:
    return {
        "items": [{"book_id": b, "quantity": q} for b, q in items],
        "shipping_address": {
            "name": "Ann Reader",
            "line1": "1 High Street",
            "city": "Bath",
            "postal_code": "BA1 1AA",
            "country": country,
        },
        "payment": {"card_number": card, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    }


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float, what: str, every: float = 0.1
) -> T:
    """Poll `probe` until it returns something, or fail after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await probe()
        if result is not None and result is not False:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(every)
