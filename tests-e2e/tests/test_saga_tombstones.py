"""A command that arrives after its compensation (it was late, or resent) is refused, never
applied: every compensation leaves a record that says so."""

import uuid

import pytest

from bookstore_shared.messages import (
    Address,
    AuthorizePayment,
    CancelDelivery,
    Envelope,
    Line,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
    ScheduleDelivery,
)
from bookstore_shared.messaging import Broker
from bookstore_testing.harness import SAMPLE_ADDRESS
from bookstore_testing.shop import Shop
from bookstore_testing.wiretap import Wiretap

pytestmark = pytest.mark.e2e


async def test_payment_authorised_after_its_refund_is_refused(e2e_broker: Broker) -> None:
    order_id = uuid.uuid4()
    token = f"fake_approved_{uuid.uuid4().hex}"
    async with Wiretap(
        e2e_broker, "PaymentRefunded", "PaymentAuthorized", "PaymentDeclined"
    ) as tap:
        await e2e_broker.publish(Envelope.wrap(RefundPayment(order_id=order_id)))
        assert await tap.heard(order_id, quiet_for=2, at_least=1) == [
            ("PaymentRefunded", {"order_id": str(order_id), "refunded_cents": 0})
        ]
        await e2e_broker.publish(
            Envelope.wrap(
                AuthorizePayment(order_id=order_id, amount_cents=900, payment_token=token)
            )
        )
        assert await tap.heard(order_id, quiet_for=2, at_least=1) == [
            ("PaymentDeclined", {"order_id": str(order_id), "reason": "voided"})
        ]


async def test_delivery_scheduled_after_its_cancel_is_refused(
    shop: Shop, e2e_broker: Broker
) -> None:
    order_id, customer_id = uuid.uuid4(), uuid.uuid4()
    address = Address.model_validate(SAMPLE_ADDRESS)
    async with Wiretap(
        e2e_broker, "DeliveryCancelled", "DeliveryScheduled", "DeliveryRejected"
    ) as tap:
        await e2e_broker.publish(
            Envelope.wrap(
                CancelDelivery(order_id=order_id, customer_id=customer_id, address=address)
            )
        )
        assert await tap.types_heard(order_id, quiet_for=2, at_least=1) == ["DeliveryCancelled"]
        await e2e_broker.publish(
            Envelope.wrap(
                ScheduleDelivery(order_id=order_id, customer_id=customer_id, address=address)
            )
        )
        refused = await tap.heard(order_id, quiet_for=2, at_least=1)
    assert [kind for kind, _ in refused] == ["DeliveryRejected"]
    assert "cancelled" in refused[0][1]["reason"]
    found = (
        await shop.gateway.get(f"/api/deliveries?order_id={order_id}", headers=shop.staff)
    ).json()
    assert [(d["status"], d["address"]["city"]) for d in found["data"]] == [("cancelled", "Bath")]


async def test_stock_reserved_after_its_release_is_refused(shop: Shop, e2e_broker: Broker) -> None:
    book = await shop.new_book(stock=5)
    order_id = uuid.uuid4()
    async with Wiretap(
        e2e_broker, "StockReleased", "StockReserved", "StockRejected", "ReservationExpired"
    ) as tap:
        await e2e_broker.publish(Envelope.wrap(ReleaseStock(order_id=order_id)))
        assert await tap.types_heard(order_id, quiet_for=2, at_least=1) == ["StockReleased"]
        lines = [Line(book_id=uuid.UUID(book), quantity=2)]
        await e2e_broker.publish(Envelope.wrap(ReserveStock(order_id=order_id, lines=lines)))
        assert await tap.types_heard(order_id, quiet_for=2, at_least=1) == ["ReservationExpired"]
    assert await shop.counts(book) == (5, 0, 0)
