"""Idempotency-Key when the first request never finished (its process died mid-way)."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bookstore_shared.columns import utcnow
from bookstore_shared.db import Database
from bookstore_testing.harness import SAMPLE_ADDRESS, assertion_headers
from sales.models import IdempotencyKey, Order
from sales.service import OrderCreate, request_fingerprint

PlaceOrder = Callable[..., Awaitable[Order]]


def _body(book_id: uuid.UUID) -> dict[str, Any]:
    return {
        "items": [{"book_id": str(book_id), "quantity": 1}],
        "shipping_address": {k: v for k, v in SAMPLE_ADDRESS.items() if v is not None},
        "payment": {
            "card_number": "4242424242424242",
            "exp_month": 12,
            "exp_year": 2030,
            "cvc": "123",
        },
    }


async def _claimed_long_ago(
    database_url: str,
    *,
    customer: uuid.UUID,
    key: str,
    body: dict[str, Any],
    secret: str,
    order_id: uuid.UUID,
    age: timedelta,
) -> None:
    """The key as a request that died after creating its order leaves it: no answer kept."""
    fingerprint = request_fingerprint(
        OrderCreate.model_validate(body).model_dump(mode="json"), secret=secret
    )
    db = Database(database_url, pool_size=1)
    async with db.unit_of_work() as session:
        session.add(
            IdempotencyKey(
                customer_id=customer,
                key=key,
                request_hash=fingerprint,
                order_id=order_id,
                created_at=utcnow() - age,
            )
        )
    await db.dispose()


@pytest.mark.parametrize(
    ("age", "expected"),
    [(timedelta(minutes=5), 202), (timedelta(seconds=1), 409)],
    ids=["abandoned", "still-running"],
)
async def test_key_whose_first_request_died_replays_its_order(
    client: httpx.AsyncClient,
    place_order: PlaceOrder,
    service_database_url: str,
    identity_secret: str,
    age: timedelta,
    expected: int,
) -> None:
    customer = uuid.uuid4()
    order = await place_order(customer)
    body = _body(order.lines[0].book_id)
    await _claimed_long_ago(
        service_database_url,
        customer=customer,
        key="k-1",
        body=body,
        secret=identity_secret,
        order_id=order.id,
        age=age,
    )
    reply = await client.post(
        "/orders",
        json=body,
        headers={
            **assertion_headers(identity_secret, user_id=customer, roles=["customer"]),
            "Idempotency-Key": "k-1",
        },
    )
    assert reply.status_code == expected, reply.text
    if expected == 202:
        assert reply.json()["id"] == str(order.id)
        assert reply.headers["idempotent-replayed"] == "true"
