"""The cart's rules: limits, setting and removing lines, books sales does not know."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest

from bookstore_shared.db import Database
from bookstore_testing.harness import assert_problem, assertion_headers
from sales.models import CatalogBook

Known = Callable[..., Awaitable[uuid.UUID]]


@pytest.fixture
async def known_book(service_database_url: str) -> AsyncIterator[Known]:
    """A book as sales knows it from inventory's events."""
    db = Database(service_database_url, pool_size=1)

    async def make(price_cents: int = 500, deleted: bool = False) -> uuid.UUID:
        book_id = uuid.uuid4()
        async with db.unit_of_work() as session:
            session.add(
                CatalogBook(
                    book_id=book_id,
                    title=f"Book {book_id.hex[:6]}",
                    price_cents=price_cents,
                    deleted=deleted,
                    changed_at=datetime.now(UTC),
                )
            )
        return book_id

    yield make
    await db.dispose()


@pytest.fixture
def ann(identity_secret: str) -> dict[str, str]:
    return assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["customer"])


async def _add(
    client: httpx.AsyncClient, who: dict[str, str], book: uuid.UUID, quantity: int = 1
) -> httpx.Response:
    body = {"book_id": str(book), "quantity": quantity}
    return await client.post("/cart/items", json=body, headers=who)


async def test_a_line_holds_at_most_one_hundred_copies(
    client: httpx.AsyncClient, ann: dict[str, str], known_book: Known
) -> None:
    book = await known_book()
    assert (await _add(client, ann, book, 60)).status_code == 201
    assert_problem(await _add(client, ann, book, 41), 422, "cart_limit")
    assert_problem(await _add(client, ann, book, 101), 422)
    cart = (await client.get("/cart", headers=ann)).json()
    assert [i["quantity"] for i in cart["items"]] == [60]


async def test_a_cart_holds_at_most_fifty_books(
    client: httpx.AsyncClient, ann: dict[str, str], known_book: Known
) -> None:
    for _ in range(50):
        assert (await _add(client, ann, await known_book())).status_code == 201
    assert_problem(await _add(client, ann, await known_book()), 422, "cart_limit")
    assert (await client.get("/cart", headers=ann)).json()["item_count"] == 50


async def test_put_sets_creates_and_zero_removes(
    client: httpx.AsyncClient, ann: dict[str, str], known_book: Known
) -> None:
    book = await known_book(price_cents=250)
    url = f"/cart/items/{book}"
    created = await client.put(url, json={"quantity": 4}, headers=ann)
    assert created.status_code == 200, created.text
    assert created.json()["total_cents"] == 1000
    assert (await client.put(url, json={"quantity": 1}, headers=ann)).json()["item_count"] == 1
    assert (await client.put(url, json={"quantity": 0}, headers=ann)).json()["items"] == []
    assert_problem(await client.put(url, json={"quantity": -1}, headers=ann), 422)


async def test_books_sales_does_not_know_or_withdrawn_are_not_found(
    client: httpx.AsyncClient, ann: dict[str, str], known_book: Known
) -> None:
    assert_problem(await _add(client, ann, uuid.uuid4()), 404, "book_not_found")
    gone = await known_book(deleted=True)
    assert_problem(await _add(client, ann, gone), 404, "book_not_found")
    put = await client.put(f"/cart/items/{gone}", json={"quantity": 1}, headers=ann)
    assert_problem(put, 404, "book_not_found")
