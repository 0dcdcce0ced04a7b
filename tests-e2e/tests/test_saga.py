"""The order saga end to end: every path ends final, with everything held given back."""

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from bookstore_testing.shop import DECLINED_CARD, NO_FUNDS_CARD, Shop, eventually, order_body

pytestmark = pytest.mark.e2e


def steps(saga: dict[str, object]) -> list[tuple[str, str]]:
    return [(s["name"], s["status"]) for s in saga["steps"]]  # type: ignore[index, union-attr]


async def test_order_happy_path_confirms_and_moves_stock_to_sold(shop: Shop) -> None:
    book = await shop.new_book(stock=5, price_cents=1250)
    customer = await shop.new_customer()
    reply = await shop.place_order(customer, [(book, 2)])
    assert reply.status_code == 201, reply.text
    order = reply.json()
    assert (order["status"], order["total_cents"]) == ("confirmed", 2500)
    assert reply.headers["location"] == f"/api/orders/{order['id']}"
    assert await shop.counts(book) == (3, 0, 2)
    deliveries = (
        await shop.gateway.get(f"/api/deliveries?order_id={order['id']}", headers=customer)
    ).json()
    assert [d["status"] for d in deliveries["data"]] == ["scheduled"]
    saga = await shop.saga(order["id"], customer)
    assert steps(saga) == [
        ("reserve_stock", "succeeded"),
        ("authorize_payment", "succeeded"),
        ("schedule_delivery", "succeeded"),
        ("commit_stock", "succeeded"),
    ]
    assert all(s["answered_at"] >= s["sent_at"] for s in saga["steps"])


async def test_order_without_wait_is_accepted_pending_then_confirms(shop: Shop) -> None:
    book = await shop.new_book(stock=1)
    customer = await shop.new_customer()
    reply = await shop.place_order(customer, [(book, 1)], wait=None)
    assert reply.status_code == 202
    assert reply.json()["status"] == "pending"
    assert reply.json()["total_cents"] is None  # priced by inventory, not by the client
    final = await shop.wait_final(reply.json()["id"], customer)
    assert final["status"] == "confirmed"


async def test_order_for_more_than_is_in_stock_is_cancelled_naming_the_short_books(
    shop: Shop,
) -> None:
    plenty, scarce = await shop.new_book(stock=10), await shop.new_book(stock=1)
    customer = await shop.new_customer()
    order = (await shop.place_order(customer, [(plenty, 2), (scarce, 3)])).json()
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "out_of_stock")
    assert order["cancel_details"]["short"] == [{"book_id": scarce, "requested": 3, "available": 1}]
    assert await shop.counts(plenty) == (10, 0, 0)
    assert await shop.counts(scarce) == (1, 0, 0)


@pytest.mark.parametrize(
    ("card", "reason"),
    [(DECLINED_CARD, "payment_declined"), (NO_FUNDS_CARD, "insufficient_funds")],
)
async def test_order_with_refused_card_is_cancelled_and_stock_released(
    shop: Shop, card: str, reason: str
) -> None:
    book = await shop.new_book(stock=4)
    customer = await shop.new_customer()
    order = (await shop.place_order(customer, [(book, 2)], card=card)).json()
    assert (order["status"], order["cancel_reason"]) == ("cancelled", reason)
    assert await shop.counts(book) == (4, 0, 0)
    assert steps(await shop.saga(order["id"], customer)) == [
        ("reserve_stock", "succeeded"),
        ("authorize_payment", "failed"),
        ("release_stock", "succeeded"),
    ]


async def test_order_to_unserved_country_is_cancelled_refunded_and_released(shop: Shop) -> None:
    book = await shop.new_book(stock=4)
    customer = await shop.new_customer()
    order = (await shop.place_order(customer, [(book, 1)], country="JP")).json()
    assert (order["status"], order["cancel_reason"]) == ("cancelled", "delivery_unavailable")
    assert await shop.counts(book) == (4, 0, 0)
    saga = await shop.saga(order["id"], customer)
    assert sorted(steps(saga)) == sorted(
        [
            ("reserve_stock", "succeeded"),
            ("authorize_payment", "succeeded"),
            ("schedule_delivery", "failed"),
            ("release_stock", "succeeded"),
            ("refund_payment", "succeeded"),
        ]
    )
    refund = next(s for s in saga["steps"] if s["name"] == "refund_payment")
    assert refund["detail"] == {"refunded_cents": 1000}


async def test_order_with_bad_card_or_items_is_refused_before_anything_starts(
    shop: Shop, customer: dict[str, str]
) -> None:
    book = await shop.new_book(stock=1)
    bad_luhn = order_body([(book, 1)], card="4242424242424241")
    for body in (
        bad_luhn,
        {**order_body([(book, 1)]), "total_cents": 1},
        order_body([(book, 0)]),
        order_body([]),
    ):
        reply = await shop.gateway.post("/api/orders", json=body, headers=customer)
        assert reply.status_code == 422, body
    assert await shop.counts(book) == (1, 0, 0)


async def test_order_with_an_expired_card_is_declined_by_the_provider(shop: Shop) -> None:
    book = await shop.new_book(stock=1)
    customer = await shop.new_customer()
    expired = order_body([(book, 1)])
    expired["payment"]["exp_year"] = 2001
    reply = await shop.gateway.post(
        "/api/orders", json=expired, headers={**customer, "Prefer": "wait=15"}
    )
    assert reply.status_code == 201, reply.text
    assert (reply.json()["status"], reply.json()["cancel_reason"]) == (
        "cancelled",
        "payment_declined",
    )
    assert await shop.counts(book) == (1, 0, 0)


async def test_order_of_another_customer_is_not_found(shop: Shop) -> None:
    book = await shop.new_book(stock=1)
    owner, stranger = await shop.new_customer(), await shop.new_customer()
    order = (await shop.place_order(owner, [(book, 1)])).json()
    for path in ("", "/saga", "/events"):
        reply = await shop.gateway.get(f"/api/orders/{order['id']}{path}", headers=stranger)
        assert reply.status_code == 404, path
    assert (
        await shop.gateway.post(f"/api/orders/{order['id']}/cancel", headers=stranger)
    ).status_code == 404
    assert (
        await shop.gateway.get(f"/api/orders/{order['id']}/saga", headers=shop.staff)
    ).status_code == 200


async def test_order_events_stream_status_until_final(shop: Shop) -> None:
    book = await shop.new_book(stock=1)
    customer = await shop.new_customer()
    order = (await shop.place_order(customer, [(book, 1)], wait=None)).json()
    seen = []
    async with shop.gateway.stream(
        "GET", f"/api/orders/{order['id']}/events", headers=customer, timeout=30
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                seen.append(httpx.Response(200, content=line[6:]).json()["status"])
    assert seen[-1] == "confirmed"
    assert set(seen) <= {"pending", "confirmed"}


async def test_cancel_before_shipping_refunds_and_puts_stock_back(shop: Shop) -> None:
    book = await shop.new_book(stock=3)
    customer = await shop.new_customer()
    order = (await shop.place_order(customer, [(book, 2)])).json()
    assert order["status"] == "confirmed"
    reply = await shop.gateway.post(f"/api/orders/{order['id']}/cancel", headers=customer)
    assert reply.status_code == 202, reply.text
    final = await shop.wait_final(order["id"], customer)
    assert (final["status"], final["cancel_reason"]) == ("cancelled", "customer_cancelled")
    assert await shop.counts(book) == (3, 0, 0)
    saga = await shop.saga(order["id"], customer)
    assert {
        ("return_stock", "succeeded"),
        ("refund_payment", "succeeded"),
        ("cancel_delivery", "succeeded"),
    } <= set(steps(saga))
    # Delivery first: stock and payment are undone only once no parcel can leave.
    at = {s["name"]: s for s in saga["steps"]}
    delivery_cancelled = datetime.fromisoformat(at["cancel_delivery"]["answered_at"])
    assert datetime.fromisoformat(at["return_stock"]["sent_at"]) >= delivery_cancelled
    assert datetime.fromisoformat(at["refund_payment"]["sent_at"]) >= delivery_cancelled


async def test_cancel_after_shipping_is_refused(shop: Shop) -> None:
    book = await shop.new_book(stock=3)
    customer = await shop.new_customer()
    order = (await shop.place_order(customer, [(book, 1)])).json()
    delivery = await shop.delivery_of(order["id"])
    assert (await shop.advance_delivery(delivery, "dispatched")).status_code == 200

    async def shipped() -> bool:
        return (await shop.order(order["id"], customer))["status"] == "shipped"

    await eventually(shipped, within=15, what="the order to follow its delivery")
    reply = await shop.gateway.post(f"/api/orders/{order['id']}/cancel", headers=customer)
    assert reply.status_code == 409
    assert reply.json()["code"] == "order_not_cancellable"
    assert await shop.counts(book) == (2, 0, 1)


async def test_delivery_advances_and_the_order_follows_to_delivered(shop: Shop) -> None:
    book = await shop.new_book(stock=1)
    customer = await shop.new_customer()
    order = (await shop.place_order(customer, [(book, 1)])).json()
    delivery = await shop.delivery_of(order["id"])
    assert (await shop.advance_delivery(delivery, "in_transit")).status_code == 409  # skips a step
    for status in ("dispatched", "in_transit", "delivered"):
        assert (await shop.advance_delivery(delivery, status)).status_code == 200

    async def delivered() -> bool:
        return (await shop.order(order["id"], customer))["status"] == "delivered"

    await eventually(delivered, within=15, what="the order to be delivered")
    tracking = (await shop.gateway.get(f"/api/deliveries/{delivery}", headers=customer)).json()
    assert [t["status"] for t in tracking["tracking"]] == [
        "scheduled",
        "dispatched",
        "in_transit",
        "delivered",
    ]
    assert (await shop.advance_delivery(delivery, "failed")).status_code == 409
    assert (
        await shop.gateway.post(
            f"/api/deliveries/{delivery}/status", json={"status": "dispatched"}, headers=customer
        )
    ).status_code == 403


async def test_failed_delivery_refunds_and_restocks(shop: Shop) -> None:
    book = await shop.new_book(stock=2)
    customer = await shop.new_customer()
    order = (await shop.place_order(customer, [(book, 2)])).json()
    delivery = await shop.delivery_of(order["id"])
    await shop.advance_delivery(delivery, "dispatched")
    assert (await shop.advance_delivery(delivery, "failed")).status_code == 200

    async def cancelled() -> dict[str, Any] | None:
        current = await shop.order(order["id"], customer)
        return current if current["status"] == "cancelled" else None

    # The delivery's failure reaches sales as an event, so the order follows a moment later.
    final = await eventually(cancelled, within=15, what="the order to be cancelled")
    assert final["cancel_reason"] == "delivery_failed"
    assert await shop.counts(book) == (2, 0, 0)
    assert ("refund_payment", "succeeded") in steps(await shop.saga(order["id"], customer))


async def test_idempotency_key_replays_the_same_order_and_answer(shop: Shop) -> None:
    book = await shop.new_book(stock=5)
    customer = await shop.new_customer()
    key = uuid.uuid4().hex
    first = await shop.place_order(customer, [(book, 1)], key=key)
    again = await shop.place_order(customer, [(book, 1)], key=key)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    other_body = await shop.place_order(customer, [(book, 2)], key=key)
    assert other_body.status_code == 422
    assert other_body.json()["code"] == "idempotency_key_reused"
    # Keys belong to their caller: another customer's same key is a new order.
    someone_else = await shop.place_order(await shop.new_customer(), [(book, 1)], key=key)
    assert someone_else.json()["id"] != first.json()["id"]
    assert await shop.counts(book) == (3, 0, 2)


async def test_idempotency_key_sent_twenty_times_at_once_makes_one_order(shop: Shop) -> None:
    book = await shop.new_book(stock=50)
    customer = await shop.new_customer()
    key = uuid.uuid4().hex
    replies = await asyncio.gather(
        *(shop.place_order(customer, [(book, 1)], key=key, wait=None) for _ in range(20))
    )
    assert {r.status_code for r in replies} <= {202, 409}
    ids = {r.json()["id"] for r in replies if r.status_code == 202}
    assert len(ids) == 1
    orders = (await shop.gateway.get("/api/orders", headers=customer)).json()
    assert orders["count"] == 1
    await shop.wait_final(ids.pop(), customer)
    assert await shop.counts(book) == (49, 0, 1)
