"""The cart through the gateway: sales learns books from inventory's events, carts hold them
at today's prices, and a cart becomes an order (and is emptied) in one step."""

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bookstore_shared.messages import BookChanged, Envelope
from bookstore_shared.messaging import Broker
from bookstore_testing.harness import assert_problem
from bookstore_testing.shop import Shop, eventually, order_body

pytestmark = pytest.mark.e2e


async def _add(shop: Shop, who: dict[str, str], book: str, quantity: int = 1) -> httpx.Response:
    return await shop.gateway.post(
        "/api/cart/items", json={"book_id": book, "quantity": quantity}, headers=who
    )


async def _add_when_known(shop: Shop, who: dict[str, str], book: str, quantity: int) -> None:
    """Sales learns a new book from inventory's event, moments after it is created."""

    async def added() -> httpx.Response | None:
        reply = await _add(shop, who, book, quantity)
        return reply if reply.status_code == 201 else None

    await eventually(added, within=15, what="sales to know the new book")


async def _cart(shop: Shop, who: dict[str, str]) -> dict[str, Any]:
    reply = await shop.gateway.get("/api/cart", headers=who)
    assert reply.status_code == 200, reply.text
    cart: dict[str, Any] = reply.json()
    return cart


async def test_cart_holds_books_at_todays_prices(shop: Shop) -> None:
    emma, dune = await shop.new_book(stock=5, price_cents=899), await shop.new_book(stock=5)
    ann = await shop.new_customer()
    await _add_when_known(shop, ann, emma, 2)
    await _add_when_known(shop, ann, dune, 1)
    assert (await _add(shop, ann, emma, 1)).status_code == 201  # added to its line

    cart = await _cart(shop, ann)
    assert [(i["book_id"], i["quantity"], i["line_total_cents"]) for i in cart["items"]] == [
        (emma, 3, 3 * 899),
        (dune, 1, 1000),
    ]
    assert (cart["item_count"], cart["total_cents"]) == (4, 3 * 899 + 1000)
    assert all(i["available"] and i["title"].startswith("Test Book") for i in cart["items"])

    changed = await shop.gateway.patch(
        f"/api/books/{emma}", json={"price_cents": 799}, headers=shop.staff
    )
    assert changed.status_code == 200, changed.text

    async def repriced() -> dict[str, Any] | None:
        cart = await _cart(shop, ann)
        return cart if cart["items"][0]["unit_price_cents"] == 799 else None

    assert (await eventually(repriced, within=15, what="the new price"))["total_cents"] == (
        3 * 799 + 1000
    )

    put = await shop.gateway.put(f"/api/cart/items/{dune}", json={"quantity": 0}, headers=ann)
    assert [i["book_id"] for i in put.json()["items"]] == [emma]
    assert (await shop.gateway.delete("/api/cart", headers=ann)).status_code == 204
    assert (await _cart(shop, ann))["items"] == []


async def test_withdrawn_book_stays_in_the_cart_unavailable_and_cannot_be_added(
    shop: Shop,
) -> None:
    book = await shop.new_book(stock=5)
    ann, bob = await shop.new_customer(), await shop.new_customer()
    await _add_when_known(shop, ann, book, 1)
    assert (await shop.gateway.delete(f"/api/books/{book}", headers=shop.staff)).status_code == 204

    async def withdrawn() -> dict[str, Any] | None:
        cart = await _cart(shop, ann)
        return None if cart["items"][0]["available"] else cart

    cart = await eventually(withdrawn, within=15, what="the book to be unavailable")
    assert cart["total_cents"] == 0
    assert_problem(await _add(shop, bob, book), 404, "book_not_found")


async def test_cart_becomes_an_order_and_is_emptied(shop: Shop) -> None:
    book = await shop.new_book(stock=4, price_cents=1250)
    ann = await shop.new_customer()
    await _add_when_known(shop, ann, book, 3)
    body = {**order_body([]), "from_cart": True}
    del body["items"]
    reply = await shop.gateway.post(
        "/api/orders", json=body, headers={**ann, "Prefer": "wait=15"}, timeout=30
    )
    assert reply.status_code == 201, reply.text
    order = reply.json()
    assert (order["status"], order["total_cents"]) == ("confirmed", 3 * 1250)
    assert [(i["book_id"], i["quantity"]) for i in order["items"]] == [(book, 3)]
    assert (await _cart(shop, ann))["items"] == []
    assert await shop.counts(book) == (1, 0, 3)

    again = await shop.gateway.post("/api/orders", json=body, headers=ann)
    assert_problem(again, 422, "cart_empty")
    both = {**body, "items": [{"book_id": book, "quantity": 1}]}
    assert_problem(await shop.gateway.post("/api/orders", json=both, headers=ann), 422)


async def test_each_account_sees_only_its_own_cart_and_strangers_none(shop: Shop) -> None:
    book = await shop.new_book(stock=5)
    ann, bob = await shop.new_customer(), await shop.new_customer()
    await _add_when_known(shop, ann, book, 2)
    assert (await _cart(shop, bob))["items"] == []
    assert (await shop.gateway.delete(f"/api/cart/items/{book}", headers=bob)).status_code == 204
    assert (await _cart(shop, ann))["item_count"] == 2
    assert_problem(await shop.gateway.get("/api/cart"), 401)
    assert_problem(await _add(shop, {}, book), 401)


async def test_an_older_book_change_arriving_late_is_ignored(
    shop: Shop, e2e_broker: Broker
) -> None:
    first, marker = await shop.new_book(stock=1), await shop.new_book(stock=1)
    ann = await shop.new_customer()
    await _add_when_known(shop, ann, first, 1)
    await _add_when_known(shop, ann, marker, 1)
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    await e2e_broker.publish(
        Envelope.wrap(
            BookChanged(
                book_id=uuid.UUID(first),
                title="Stale",
                price_cents=1,
                deleted=False,
                changed_at=long_ago,
            )
        )
    )
    # Sales takes catalog changes one at a time, in order: once this newer one shows, the
    # older one before it has been handled.
    await e2e_broker.publish(
        Envelope.wrap(
            BookChanged(
                book_id=uuid.UUID(marker),
                title="Fresh",
                price_cents=1,
                deleted=False,
                changed_at=datetime.now(UTC),
            )
        )
    )

    async def fresh() -> dict[str, Any] | None:
        cart = await _cart(shop, ann)
        return cart if {i["title"] for i in cart["items"]} >= {"Fresh"} else None

    cart = await eventually(fresh, within=15, what="the newer change to show")
    assert "Stale" not in {i["title"] for i in cart["items"]}


async def test_cart_order_with_an_idempotency_key_is_placed_once(shop: Shop) -> None:
    book = await shop.new_book(stock=5)
    ann = await shop.new_customer()
    await _add_when_known(shop, ann, book, 1)
    body = {**order_body([]), "from_cart": True}
    del body["items"]
    headers = {**ann, "Idempotency-Key": uuid.uuid4().hex, "Prefer": "wait=15"}
    first = await shop.gateway.post("/api/orders", json=body, headers=headers, timeout=30)
    again = await shop.gateway.post("/api/orders", json=body, headers=headers, timeout=30)
    assert first.status_code == 201, first.text
    assert again.json()["id"] == first.json()["id"]  # replayed, though the cart is empty now
    assert again.headers["idempotent-replayed"] == "true"
    orders = await shop.gateway.get("/api/orders", headers=ann)
    assert orders.json()["count"] == 1
