"""Failures the saga must survive: crashes, a broker restart, poison and duplicate messages,
an expired reservation, a request repeated while the first is still running."""

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest

from bookstore_shared.messages import AuthorizePayment, Envelope, Line, ReserveStock
from bookstore_shared.messaging import INVENTORY_COMMANDS, Broker
from bookstore_shared.stack import LocalStack
from bookstore_testing.infra import Infra
from bookstore_testing.shop import Shop, eventually
from bookstore_testing.wiretap import Wiretap

pytestmark = pytest.mark.e2e


async def _wait_exited(stack: LocalStack, app: str) -> None:
    async def gone() -> bool:
        return app in stack.exited()

    await eventually(gone, within=20, what=f"{app} to crash")


@pytest.mark.parametrize(
    ("app", "message_type"),
    [("sales", "ReserveStock"), ("inventory", "StockReserved"), ("delivery", "DeliveryScheduled")],
)
async def test_app_killed_between_commit_and_publish_completes_after_restart(
    shop: Shop, stack: LocalStack, app: str, message_type: str
) -> None:
    book = await shop.new_book(stock=3)
    customer = await shop.new_customer()
    await asyncio.to_thread(
        stack.restart, app, {"BOOKSTORE_FAULTS": f"crash_after_commit:{message_type}"}
    )
    try:
        reply = await shop.place_order(customer, [(book, 1)], wait=None)
        await _wait_exited(stack, app)
    finally:
        await asyncio.to_thread(stack.restart, app)
    if app != "sales":
        assert reply.status_code == 202
    orders = (await shop.gateway.get("/api/orders", headers=customer)).json()
    assert orders["count"] == 1  # committed before the crash, so it exists
    final = await shop.wait_final(orders["data"][0]["id"], customer, within=40)
    assert final["status"] == "confirmed"
    assert await shop.counts(book) == (2, 0, 1)


async def test_broker_restart_mid_saga_loses_nothing(shop: Shop, infra: Infra) -> None:
    if infra.source != "local":
        pytest.skip("restarts the local RabbitMQ with rabbitmqctl")
    book = await shop.new_book(stock=30)
    customer = await shop.new_customer()
    replies = await asyncio.gather(
        *(shop.place_order(customer, [(book, 1)], wait=None) for _ in range(20))
    )
    assert {r.status_code for r in replies} == {202}
    for command in (["rabbitmqctl", "stop_app"], ["rabbitmqctl", "start_app"]):
        await asyncio.to_thread(
            subprocess.run, command, check=True, capture_output=True, timeout=120
        )
    finals = [await shop.wait_final(r.json()["id"], customer, within=90) for r in replies]
    assert {f["status"] for f in finals} == {"confirmed"}
    assert await shop.counts(book) == (10, 0, 20)


@pytest.fixture
async def dead_letters(e2e_broker: Broker) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    channel = await e2e_broker.connection.channel()
    queue = await channel.declare_queue(
        f"{e2e_broker.name('inventory.commands')}.dead", passive=True
    )
    await queue.purge()
    yield queue
    await channel.close()


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"message_id": "x"}',
        Envelope.wrap(ReserveStock.model_construct(order_id=uuid.uuid4(), lines=[]))
        .model_dump_json()
        .encode(),
    ],
    ids=["not-json", "not-an-envelope", "invalid-payload"],
)
async def test_poison_message_is_dead_lettered_and_good_ones_keep_flowing(
    shop: Shop, e2e_broker: Broker, dead_letters: aio_pika.abc.AbstractQueue, body: bytes
) -> None:
    channel = await e2e_broker.connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(e2e_broker.exchange_name)
    await exchange.publish(aio_pika.Message(body, message_id="poison"), routing_key="ReserveStock")
    await channel.close()

    async def dead_lettered() -> aio_pika.abc.AbstractIncomingMessage | None:
        return await dead_letters.get(fail=False)

    dead = await eventually(dead_lettered, within=20, what="the poison message in the DLQ")
    assert dead.body == body
    await dead.ack()
    book = await shop.new_book(stock=1)
    order = (await shop.place_order(await shop.new_customer(), [(book, 1)])).json()
    assert order["status"] == "confirmed"


async def test_same_command_delivered_three_times_is_applied_once(
    shop: Shop, e2e_broker: Broker
) -> None:
    book = await shop.new_book(stock=10)
    order_id = uuid.uuid4()
    lines = [Line(book_id=uuid.UUID(book), quantity=4)]
    reserve = Envelope.wrap(ReserveStock(order_id=order_id, lines=lines))
    pay = Envelope.wrap(
        AuthorizePayment(
            order_id=order_id, amount_cents=500, payment_token=f"fake_approved_{uuid.uuid4().hex}"
        )
    )
    async with Wiretap(
        e2e_broker, "StockReserved", "StockRejected", "PaymentAuthorized", "PaymentDeclined"
    ) as replies:
        for envelope in (reserve, pay):
            for _ in range(3):
                await e2e_broker.publish(envelope)
        seen = await replies.types_heard(order_id, quiet_for=3, at_least=2)
        assert sorted(seen) == ["PaymentAuthorized", "StockReserved"]
        assert await shop.counts(book) == (6, 4, 0)
        # A retried command (a new message about the same order) is answered the same way
        # without setting more stock aside.
        await e2e_broker.publish(Envelope.wrap(ReserveStock(order_id=order_id, lines=lines)))
        assert await replies.types_heard(order_id, quiet_for=2, at_least=1) == ["StockReserved"]
        assert await shop.counts(book) == (6, 4, 0)


@dataclass(frozen=True)
class Gate:
    """A file that a held consumer waits for (`BOOKSTORE_FAULTS=hold:<type>:<path>`)."""

    path: Path

    async def open(self) -> None:
        await asyncio.to_thread(self.path.touch)


@pytest.fixture
async def delivery_gate(stack: LocalStack, tmp_path: Path) -> AsyncIterator[Gate]:
    """Deliveries are scheduled only once the gate opens: the test says when they go on."""
    gate = Gate(tmp_path / "let-deliveries-through")
    await asyncio.to_thread(
        stack.restart, "delivery", {"BOOKSTORE_FAULTS": f"hold:ScheduleDelivery:{gate.path}"}
    )
    try:
        yield gate
    finally:
        await gate.open()
        await asyncio.to_thread(stack.restart, "delivery")


@pytest.fixture
async def short_lease(stack: LocalStack) -> AsyncIterator[None]:
    """Reservations last one second."""
    await asyncio.to_thread(stack.restart, "inventory", {"RESERVATION_LEASE_SECONDS": "1"})
    try:
        yield
    finally:
        await asyncio.to_thread(stack.restart, "inventory")


@pytest.mark.usefixtures("short_lease")
async def test_reservation_expiry_while_delivery_is_held_releases_stock_and_refunds(
    shop: Shop, delivery_gate: Gate
) -> None:
    book = await shop.new_book(stock=2)
    customer = await shop.new_customer()
    order = (await shop.place_order(customer, [(book, 2)], wait=None)).json()

    async def expired() -> bool:
        saga = await shop.saga(order["id"], customer)
        return saga["saga_state"] == "compensating" and saga["cancel_reason"] == "expired"

    await eventually(expired, within=30, what="the reservation to expire")
    assert await shop.counts(book) == (2, 0, 0)  # released, while the delivery is held
    await delivery_gate.open()  # scheduled only now, after the lease ran out: cancelled
    final = await shop.wait_final(order["id"], customer, within=30)
    assert (final["status"], final["cancel_reason"]) == ("cancelled", "expired")
    assert await shop.counts(book) == (2, 0, 0)
    saga = await shop.saga(order["id"], customer)
    refund = [s for s in saga["steps"] if s["name"] == "refund_payment"]
    assert [(s["status"], s["detail"]) for s in refund] == [("succeeded", {"refunded_cents": 2000})]
    cancel = [s["status"] for s in saga["steps"] if s["name"] == "cancel_delivery"]
    assert cancel == ["succeeded"]  # the late delivery was scheduled, then cancelled
    assert "commit_stock" not in {s["name"] for s in saga["steps"]}


async def test_idempotency_key_reused_while_first_request_runs_is_a_conflict(
    shop: Shop, delivery_gate: Gate
) -> None:
    book = await shop.new_book(stock=5)
    customer = await shop.new_customer()
    key = uuid.uuid4().hex
    first = asyncio.create_task(shop.place_order(customer, [(book, 1)], key=key, wait=20))

    async def in_flight() -> bool:
        return (await shop.gateway.get("/api/orders", headers=customer)).json()["count"] == 1

    await eventually(in_flight, within=10, what="the first order to exist")
    second = await shop.place_order(customer, [(book, 1)], key=key, wait=None)
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_key_in_flight"
    await delivery_gate.open()
    assert (await first).status_code == 201


async def test_step_without_answer_is_resent_then_compensated(
    shop: Shop, stack: LocalStack
) -> None:
    # Delivery is down, so schedule_delivery never gets an answer; the other steps do, well
    # within the deadline even on a busy machine.
    fast_deadlines = {"SAGA_STEP_TIMEOUT_SECONDS": "2", "SAGA_STEP_MAX_ATTEMPTS": "2"}
    await asyncio.to_thread(stack.restart, "sales", fast_deadlines)
    await asyncio.to_thread(stack.stop_app, "delivery")
    try:
        book = await shop.new_book(stock=2)
        customer = await shop.new_customer()
        order = (await shop.place_order(customer, [(book, 1)], wait=None)).json()

        step = await shop.step_reaching(
            order["id"], customer, "schedule_delivery", "timed_out", within=20
        )
        assert step["attempts"] == 2
    finally:
        # Delivery comes back: the queued commands and the compensation are worked off.
        await asyncio.to_thread(stack.restart, "delivery")
        await asyncio.to_thread(stack.restart, "sales")
    final = await shop.wait_final(order["id"], customer, within=40)
    assert (final["status"], final["cancel_reason"]) == ("cancelled", "expired")
    assert await shop.counts(book) == (2, 0, 0)
    saga = await shop.saga(order["id"], customer)
    done = {(s["name"], s["status"]) for s in saga["steps"]}
    assert {
        ("release_stock", "succeeded"),
        ("refund_payment", "succeeded"),
        ("cancel_delivery", "succeeded"),
    } <= done


async def test_dead_letters_replayed_are_applied_once_however_often_replayed(
    shop: Shop, stack: LocalStack, e2e_broker: Broker
) -> None:
    book = await shop.new_book(stock=5)
    order_id = uuid.uuid4()
    lines = [Line(book_id=uuid.UUID(book), quantity=2)]
    command = Envelope.wrap(ReserveStock(order_id=order_id, lines=lines))
    dead_queue = f"{e2e_broker.name(INVENTORY_COMMANDS)}.dead"
    channel = await e2e_broker.connection.channel(publisher_confirms=True)
    try:  # parked twice (a duplicate), as if it had failed every try each time
        for _ in range(2):
            await channel.default_exchange.publish(
                aio_pika.Message(
                    command.model_dump_json().encode(),
                    message_id=str(command.message_id),
                    correlation_id=str(order_id),
                    type=command.type,
                ),
                routing_key=dead_queue,
            )
    finally:
        await channel.close()
    async with Wiretap(e2e_broker, "StockReserved") as replies:
        first = await asyncio.to_thread(stack.run_command, "inventory", "replay-dead-letters")
        assert f"2 dead letters of {INVENTORY_COMMANDS} sent back to it" in first
        assert await replies.types_heard(order_id, quiet_for=2, at_least=1) == ["StockReserved"]
        again = await asyncio.to_thread(stack.run_command, "inventory", "replay-dead-letters")
        assert f"0 dead letters of {INVENTORY_COMMANDS} sent back to it" in again
    assert await shop.counts(book) == (3, 2, 0)
