"""Two replicas of sales and of inventory behind one gateway: one replica is restarted or
killed while customers keep ordering."""

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from bookstore_shared.messaging import Broker
from bookstore_shared.stack import LocalStack
from bookstore_testing.infra import Databases, Infra
from bookstore_testing.load import OrderLoad
from bookstore_testing.scrape import scrape, value
from bookstore_testing.shop import Shop, eventually
from bookstore_testing.stacks import DEMO_PASSWORD, running_stack
from bookstore_testing.wiretap import Wiretap

pytestmark = pytest.mark.e2e
CLIENTS = 16
STOCK = 10_000


@pytest.fixture(scope="module")
async def replicated(
    databases: Databases,
    infra: Infra,
    broker_namespace: str,
    identity_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LocalStack]:
    async with running_stack(
        databases=databases,
        infra=infra,
        namespace=f"{broker_namespace}-replicas",
        identity_secret=identity_secret,
        log_dir=tmp_path_factory.mktemp("replica-logs"),
        purpose="replicas",
        replicas={"sales": 2, "inventory": 2},
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def shop(replicated: LocalStack) -> AsyncIterator[Shop]:
    limits = httpx.Limits(max_connections=CLIENTS + 8)
    async with httpx.AsyncClient(
        base_url=replicated.url("gateway"), timeout=60, limits=limits
    ) as gateway:
        token = await gateway.post(
            "/api/auth/token",
            data={"username": "staff@bookstore.local", "password": DEMO_PASSWORD},
        )
        yield Shop(gateway, {"Authorization": f"Bearer {token.json()['access_token']}"})


@pytest.fixture
async def load(shop: Shop) -> AsyncIterator[OrderLoad]:
    books = [await shop.new_book(stock=STOCK) for _ in range(4)]
    customers = [await shop.new_customer() for _ in range(CLIENTS)]
    running = OrderLoad(shop, books, customers)
    running.start()
    yield running
    await running.finish()


async def _every_order_final_and_stock_whole(load: OrderLoad) -> None:
    for customer in load.customers:
        orders = (await load.shop.gateway.get("/api/orders?size=100", headers=customer)).json()
        assert orders["count"] <= 100
        for order in orders["data"]:
            final = await load.shop.wait_final(order["id"], customer, within=60)
            assert final["status"] in {"confirmed", "cancelled"}
    for book in load.books:
        available, reserved, sold = await load.shop.counts(book)
        assert reserved == 0
        assert available + sold == STOCK


async def test_sales_replica_restarted_with_sigterm_fails_no_request(
    replicated: LocalStack, load: OrderLoad
) -> None:
    await load.run_until(30, within=60)
    before = replicated.pid("sales-2")
    await asyncio.to_thread(replicated.restart, "sales-2")  # SIGTERM, drain, start again
    assert replicated.pid("sales-2") != before
    await load.run_until(60, within=60)
    await load.finish()
    assert load.failures() == []
    await _every_order_final_and_stock_whole(load)


async def test_sales_replica_killed_fails_only_requests_in_flight_there(
    replicated: LocalStack, load: OrderLoad
) -> None:
    await load.run_until(30, within=60)
    killed_at = time.monotonic()
    replicated.signal("sales-2", signal.SIGKILL)

    async def gone() -> bool:
        return "sales-2" in replicated.exited()

    await eventually(gone, within=10, what="sales-2 to die")
    await load.run_until(60, within=60)  # the gateway keeps ordering through sales
    await asyncio.to_thread(replicated.restart, "sales-2")
    await load.run_until(30, within=60)
    await load.finish()
    failed = load.failures()
    # At most one request per client was on its way when the replica died; none sent later
    # may fail. Such a request answers 503, or, when the gateway sent it again to the other
    # replica after the dead one had created its order, 409 `idempotency_key_in_flight` (the
    # contract for a key whose first request has not answered).
    assert len(failed) <= CLIENTS, failed[:3]
    assert all(a.sent_at < killed_at for a in failed), failed[:3]
    assert all(
        a.status == 503 or (a.status == 409 and "idempotency_key_in_flight" in a.body)
        for a in failed
    ), failed[:3]
    await _every_order_final_and_stock_whole(load)


@pytest.fixture
async def replicas_broker(replicated: LocalStack, infra: Infra) -> AsyncIterator[Broker]:
    broker = Broker(infra.amqp_url, namespace=replicated.env["BROKER_NAMESPACE"])
    await broker.connect()
    yield broker
    await broker.close()


async def test_two_sales_sweepers_resend_an_overdue_step_once_per_deadline(
    replicated: LocalStack, shop: Shop, replicas_broker: Broker
) -> None:
    fast = {"SAGA_STEP_TIMEOUT_SECONDS": "1", "SAGA_STEP_MAX_ATTEMPTS": "3"}
    for name in ("sales", "sales-2"):
        await asyncio.to_thread(replicated.restart, name, fast)
    await asyncio.to_thread(replicated.stop_app, "delivery")  # nobody answers ScheduleDelivery
    try:
        book = await shop.new_book(stock=1)
        customer = await shop.new_customer()
        async with Wiretap(replicas_broker, "ScheduleDelivery") as tap:
            order = (await shop.place_order(customer, [(book, 1)], wait=None)).json()

            step = await shop.step_reaching(
                order["id"], customer, "schedule_delivery", "timed_out", within=30
            )
            copies = await tap.copies(uuid.UUID(order["id"]), quiet_for=2)
        # Both replicas swept all along, yet each deadline led to one resend only: three
        # commands (a command may be heard twice, as the outbox allows; inboxes drop copies).
        assert step["attempts"] == 3
        assert len({message_id for message_id, _, _ in copies}) == 3, copies
        assert {kind for _, kind, _ in copies} == {"ScheduleDelivery"}
    finally:
        await asyncio.to_thread(replicated.restart, "delivery")
        for name in ("sales", "sales-2"):
            await asyncio.to_thread(replicated.restart, name)
    final = await shop.wait_final(order["id"], customer, within=60)
    assert (final["status"], final["cancel_reason"]) == ("cancelled", "expired")
    assert await shop.counts(book) == (1, 0, 0)


async def test_each_replica_answers_its_own_metrics(replicated: LocalStack, shop: Shop) -> None:
    book_id = await shop.new_book(stock=50)
    customer = await shop.new_customer()
    replicas = replicated.names["sales"]
    placed = {"method": "POST", "handler": "/orders", "status": "201"}

    async def posted() -> dict[str, float]:
        counts = {}
        for name in replicas:
            async with httpx.AsyncClient(base_url=replicated.url(name)) as client:
                counts[name] = value(await scrape(client), "http_requests_total", **placed)
        return counts

    before = await posted()
    for _ in range(6):
        assert (await shop.place_order(customer, [(book_id, 1)])).status_code == 201
    after = await posted()
    grew = {name: after[name] - before[name] for name in replicas}
    # The gateway takes the replicas in turn; each counts only what it answered itself.
    assert sum(grew.values()) == 6, grew
    assert all(n >= 1 for n in grew.values()), grew
