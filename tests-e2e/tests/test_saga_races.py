"""A customer's cancel and staff's dispatch at the same moment: whichever wins, the order ends
whole. Cancelled: the parcel cancelled, the copy back, the money refunded. Shipped: the copy
sold, no refund, and the order says why the cancel was refused."""

import asyncio
from collections import Counter
from typing import Any

import pytest

from bookstore_testing.shop import Shop

pytestmark = pytest.mark.e2e
ROUNDS = 16


def _steps(saga: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in saga["steps"]}


async def _race(shop: Shop, customer: dict[str, str], book: str, head_start: float) -> str:
    """Cancel, and `head_start` seconds later dispatch: both are on their way at once."""
    order = (await shop.place_order(customer, [(book, 1)])).json()
    assert order["status"] == "confirmed"
    delivery = await shop.delivery_of(order["id"])

    async def dispatch_soon() -> Any:
        await asyncio.sleep(head_start)
        return await shop.advance_delivery(delivery, "dispatched")

    cancel, dispatch = await asyncio.gather(
        shop.gateway.post(f"/api/orders/{order['id']}/cancel", headers=customer),
        dispatch_soon(),
    )
    final = await shop.wait_final(order["id"], customer, within=30)
    saga = _steps(await shop.saga(order["id"], customer))
    parcel = (await shop.gateway.get(f"/api/deliveries/{delivery}", headers=customer)).json()
    if final["status"] == "cancelled":
        assert final["cancel_reason"] == "customer_cancelled"
        assert cancel.status_code == 202
        assert dispatch.status_code == 409  # a cancelled delivery never leaves
        assert parcel["status"] == "cancelled"
        assert saga["cancel_delivery"] == "succeeded"
        assert saga["return_stock"] == "succeeded"
        assert saga["refund_payment"] == "succeeded"
    else:
        assert final["status"] == "shipped", final
        assert final["cancel_reason"] is None
        assert dispatch.status_code == 200
        assert parcel["status"] == "dispatched"
        assert "refund_payment" not in saga
        assert "return_stock" not in saga
        if cancel.status_code == 202:  # the cancel was taken, then refused by delivery
            assert saga["cancel_delivery"] == "failed"
            assert "dispatched" in final["cancel_refusal"]
        else:  # the order had shipped before the cancel came
            assert cancel.json()["code"] == "order_not_cancellable"
    return str(final["status"])


async def test_cancel_racing_dispatch_always_ends_whole(shop: Shop) -> None:
    book = await shop.new_book(stock=ROUNDS)
    customer = await shop.new_customer()
    # The cancel's head start sweeps the window in which the two meet, so both can win.
    head_starts = [i * 0.001 for i in range(ROUNDS)]
    outcomes = Counter([await _race(shop, customer, book, head) for head in head_starts])
    assert set(outcomes) <= {"cancelled", "shipped"}
    assert await shop.counts(book) == (outcomes["cancelled"], 0, outcomes["shipped"])
