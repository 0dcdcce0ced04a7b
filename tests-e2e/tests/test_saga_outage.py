"""A database outage longer than the broker's redelivery budget (ten tries, about 31 s, before
this was fixed) loses nothing: messages wait in the retry tiers, then every order ends whole."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import make_url

from bookstore_shared.messaging import INVENTORY_COMMANDS, Broker
from bookstore_shared.stack import LocalStack
from bookstore_testing.shop import Shop
from bookstore_testing.tcpproxy import TcpProxy

pytestmark = pytest.mark.e2e
OUTAGE_SECONDS = 40


@pytest.fixture
async def inventory_database(stack: LocalStack) -> AsyncIterator[TcpProxy]:
    """Inventory reaches Postgres through a relay the test can cut."""
    url = make_url(stack.env["DATABASE_URL"])
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432).running() as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        await asyncio.to_thread(stack.restart, "inventory", {"DATABASE_URL": proxied})
        try:
            yield proxy
        finally:
            await proxy.restore()
            await asyncio.to_thread(stack.restart, "inventory")


async def test_inventory_database_away_for_forty_seconds_loses_no_order(
    shop: Shop, inventory_database: TcpProxy, e2e_broker: Broker
) -> None:
    book = await shop.new_book(stock=20)
    customer = await shop.new_customer()
    orders = [(await shop.place_order(customer, [(book, 1)], wait=None)).json() for _ in range(4)]
    await inventory_database.cut()
    orders += [(await shop.place_order(customer, [(book, 1)], wait=None)).json() for _ in range(4)]
    during = await shop.gateway.get(f"/api/books/{book}")
    assert during.status_code == 503, during.text
    assert during.headers["content-type"] == "application/problem+json"
    # The fault under test is the outage's length itself: longer than the old redelivery budget.
    await asyncio.sleep(OUTAGE_SECONDS)
    await inventory_database.restore()
    finals = [await shop.wait_final(o["id"], customer, within=90) for o in orders]
    assert [f["status"] for f in finals] == ["confirmed"] * len(orders)
    assert await shop.counts(book) == (20 - len(orders), 0, len(orders))
    channel = await e2e_broker.connection.channel()
    try:
        dead = await channel.declare_queue(
            f"{e2e_broker.name(INVENTORY_COMMANDS)}.dead", passive=True
        )
        assert dead.declaration_result.message_count == 0
    finally:
        await channel.close()
