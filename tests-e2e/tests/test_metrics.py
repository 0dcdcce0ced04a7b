"""Each app's own /metrics, read from its own port while orders go through the gateway."""

import httpx
import pytest

from bookstore_shared.stack import LocalStack
from bookstore_testing.scrape import Samples, names, scrape, value
from bookstore_testing.shop import DECLINED_CARD, Shop, eventually

pytestmark = pytest.mark.e2e
APPS = ("gateway", "inventory", "sales", "delivery")


async def _scrape_all(stack: LocalStack) -> dict[str, Samples]:
    scraped = {}
    for app in APPS:
        async with httpx.AsyncClient(base_url=stack.url(app)) as client:
            scraped[app] = await scrape(client)  # no identity assertion: a scraper has none
    return scraped


def _grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_a_confirmed_and_a_declined_order_show_in_every_apps_metrics(
    stack: LocalStack, shop: Shop
) -> None:
    book_id = await shop.new_book(stock=5)
    customer = await shop.new_customer()
    before = await _scrape_all(stack)
    confirmed = (await shop.place_order(customer, [(book_id, 1)])).json()
    declined = (await shop.place_order(customer, [(book_id, 1)], card=DECLINED_CARD)).json()
    assert (confirmed["status"], declined["status"]) == ("confirmed", "cancelled")

    async def settled() -> dict[str, Samples] | None:
        after = await _scrape_all(stack)
        inventory = after["inventory"]
        # Reserve and commit, reserve and release: four commands handled by inventory.
        handled = _grew(
            before["inventory"],
            inventory,
            "bookstore_messages_handled_total",
            queue="inventory.commands",
            outcome="processed",
        )
        return after if handled >= 4 else None

    after = await eventually(settled, within=15, what="inventory to handle the order's commands")
    sales_before, sales = before["sales"], after["sales"]
    finished = "bookstore_orders_finished_total"
    assert _grew(sales_before, sales, finished, status="confirmed", reason="") >= 1
    assert _grew(sales_before, sales, finished, status="cancelled", reason="payment_declined") >= 1
    assert _grew(sales_before, sales, "bookstore_saga_duration_seconds_count", status="confirmed")
    assert _grew(sales_before, sales, "bookstore_saga_compensations_total", action="release_stock")
    assert _grew(
        before["delivery"],
        after["delivery"],
        "bookstore_messages_handled_total",
        queue="delivery.commands",
        outcome="processed",
    )
    # The request metrics name routes by template, in the gateway and in the app behind it.
    posted = {"method": "POST", "status": "201"}
    assert (
        _grew(
            before["gateway"],
            after["gateway"],
            "http_requests_total",
            handler="/api/orders",
            **posted,
        )
        >= 2
    )
    assert _grew(sales_before, sales, "http_requests_total", handler="/orders", **posted) >= 2
    for app in ("inventory", "sales", "delivery"):
        assert {
            "bookstore_outbox_backlog",
            "bookstore_outbox_oldest_age_seconds",
            "bookstore_db_pool_in_use",
        } <= names(after[app]), app
        assert value(after[app], "bookstore_db_pool_size") > 0


async def test_metrics_are_not_reachable_through_the_gateways_api(
    gateway: httpx.AsyncClient,
) -> None:
    assert (await gateway.get("/api/metrics")).status_code == 404
