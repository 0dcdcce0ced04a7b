import uuid
from collections.abc import Awaitable, Callable

import httpx

from bookstore_testing.harness import assertion_headers
from sales.models import Order, OrderStatus

PlaceOrder = Callable[..., Awaitable[Order]]


async def test_get_order_as_its_owner_shows_lines_and_address(
    client: httpx.AsyncClient, identity_secret: str, place_order: PlaceOrder
) -> None:
    owner = uuid.uuid4()
    order = await place_order(owner)
    reply = await client.get(
        f"/orders/{order.id}",
        headers=assertion_headers(identity_secret, user_id=owner, roles=["customer"]),
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["status"], body["total_cents"], body["card_last4"]) == ("pending", 1798, "4242")
    assert body["items"] == [
        {
            "book_id": str(order.lines[0].book_id),
            "title": "Emma",
            "unit_price_cents": 899,
            "quantity": 2,
        }
    ]
    assert body["shipping_address"]["country"] == "GB"


async def test_get_order_of_another_customer_is_not_found(
    client: httpx.AsyncClient, identity_secret: str, place_order: PlaceOrder
) -> None:
    order = await place_order(uuid.uuid4())
    stranger = assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["customer"])
    reply = await client.get(f"/orders/{order.id}", headers=stranger)
    assert reply.status_code == 404
    assert reply.json()["code"] == "order_not_found"


async def test_get_order_as_staff_shows_any_order(
    client: httpx.AsyncClient, identity_secret: str, place_order: PlaceOrder
) -> None:
    order = await place_order(uuid.uuid4())
    staff = assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["staff"])
    assert (await client.get(f"/orders/{order.id}", headers=staff)).status_code == 200


async def test_get_order_anonymously_is_unauthorized(
    client: httpx.AsyncClient, identity_secret: str, place_order: PlaceOrder
) -> None:
    order = await place_order(uuid.uuid4())
    reply = await client.get(f"/orders/{order.id}", headers=assertion_headers(identity_secret))
    assert reply.status_code == 401


async def test_list_orders_shows_a_customer_only_their_own(
    client: httpx.AsyncClient, identity_secret: str, place_order: PlaceOrder
) -> None:
    ann, bob = uuid.uuid4(), uuid.uuid4()
    mine = [await place_order(ann), await place_order(ann, OrderStatus.CONFIRMED)]
    await place_order(bob)
    reply = await client.get(
        "/orders", headers=assertion_headers(identity_secret, user_id=ann, roles=["customer"])
    )
    body = reply.json()
    assert body["count"] == 2
    assert {o["id"] for o in body["data"]} == {str(o.id) for o in mine}


async def test_list_orders_as_staff_shows_everyone_and_filters_by_status(
    client: httpx.AsyncClient, identity_secret: str, place_order: PlaceOrder
) -> None:
    await place_order(uuid.uuid4())
    confirmed = await place_order(uuid.uuid4(), OrderStatus.CONFIRMED)
    staff = assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["staff"])
    assert (await client.get("/orders", headers=staff)).json()["count"] == 2
    only = (await client.get("/orders?status=confirmed", headers=staff)).json()
    assert [o["id"] for o in only["data"]] == [str(confirmed.id)]


async def test_list_orders_anonymously_is_unauthorized(
    client: httpx.AsyncClient, identity_secret: str
) -> None:
    assert (
        await client.get("/orders", headers=assertion_headers(identity_secret))
    ).status_code == 401


async def test_list_orders_without_assertion_is_unauthorized(client: httpx.AsyncClient) -> None:
    assert (
        await client.get("/orders", headers={"X-User-Id": str(uuid.uuid4())})
    ).status_code == 401


async def test_place_order_with_an_unknown_address_field_is_refused(
    client: httpx.AsyncClient, identity_secret: str
) -> None:
    body = {
        "items": [{"book_id": str(uuid.uuid4()), "quantity": 1}],
        "shipping_address": {
            "name": "Ann Reader",
            "line1": "1 High Street",
            "city": "Bath",
            "postal_code": "BA1 1AA",
            "country": "GB",
            "deliver_free": True,
        },
        "payment": {
            "card_number": "4242424242424242",
            "exp_month": 12,
            "exp_year": 2030,
            "cvc": "123",
        },
    }
    customer = assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["customer"])
    reply = await client.post("/orders", json=body, headers=customer)
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["loc"][-1] == "deliver_free"
