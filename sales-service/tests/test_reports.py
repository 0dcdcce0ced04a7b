"""Sales reports: orders sold (confirmed or later) in a period, by day/week/month; top sellers."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bookstore_shared.db import Database
from bookstore_testing.harness import SAMPLE_ADDRESS, assert_problem, assertion_headers
from sales.models import Order, OrderLine, OrderStatus

Sell = Callable[..., Awaitable[None]]
EMMA, DUNE = uuid.uuid4(), uuid.uuid4()


@pytest.fixture
async def sell(service_database_url: str) -> AsyncIterator[Sell]:
    """An order placed at `when` with these (book, title, copies, unit price) lines."""
    db = Database(service_database_url, pool_size=1)

    async def place(
        when: datetime, status: OrderStatus, *lines: tuple[uuid.UUID, str, int, int]
    ) -> None:
        async with db.unit_of_work() as session:
            order = Order(
                customer_id=uuid.uuid4(),
                status=status,
                total_cents=sum(q * p for _, _, q, p in lines),
                shipping_address=SAMPLE_ADDRESS,
                created_at=when,
                updated_at=when,
            )
            order.lines = [
                OrderLine(book_id=b, title=t, quantity=q, unit_price_cents=p)
                for b, t, q, p in lines
            ]
            session.add(order)

    yield place
    await db.dispose()


@pytest.fixture
def staff(identity_secret: str) -> dict[str, str]:
    return assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["staff"])


def _at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


async def test_summary_counts_sold_orders_by_day_and_cancellations(
    client: httpx.AsyncClient, staff: dict[str, str], sell: Sell
) -> None:
    await sell(_at("2026-03-02"), OrderStatus.CONFIRMED, (EMMA, "Emma", 2, 899))
    await sell(_at("2026-03-02", 23), OrderStatus.DELIVERED, (DUNE, "Dune", 1, 1099))
    await sell(
        _at("2026-03-04"), OrderStatus.SHIPPED, (EMMA, "Emma", 1, 899), (DUNE, "Dune", 3, 1099)
    )
    await sell(_at("2026-03-04"), OrderStatus.CANCELLED, (EMMA, "Emma", 5, 899))
    await sell(_at("2026-03-04"), OrderStatus.PENDING, (EMMA, "Emma", 7, 899))
    await sell(_at("2026-03-05", 0), OrderStatus.CONFIRMED, (EMMA, "Emma", 9, 899))  # after `to`

    reply = await client.get(
        "/reports/sales-summary", params={"from": "2026-03-01", "to": "2026-03-04"}, headers=staff
    )
    assert reply.status_code == 200, reply.text
    summary = reply.json()
    assert (summary["from"], summary["to"]) == ("2026-03-01", "2026-03-04")
    assert (summary["orders"], summary["units"], summary["cancelled"]) == (3, 7, 1)
    assert summary["revenue_cents"] == 2 * 899 + 1099 + 899 + 3 * 1099
    assert summary["by_period"] == [
        {"period": "2026-03-02", "orders": 2, "units": 3, "revenue_cents": 2 * 899 + 1099},
        {"period": "2026-03-04", "orders": 1, "units": 4, "revenue_cents": 899 + 3 * 1099},
    ]


async def test_summary_by_month_and_by_week(
    client: httpx.AsyncClient, staff: dict[str, str], sell: Sell
) -> None:
    await sell(_at("2026-01-31"), OrderStatus.CONFIRMED, (EMMA, "Emma", 1, 100))
    await sell(_at("2026-02-01"), OrderStatus.CONFIRMED, (EMMA, "Emma", 2, 100))
    await sell(_at("2026-02-02"), OrderStatus.CONFIRMED, (EMMA, "Emma", 3, 100))  # a Monday
    period = {"from": "2026-01-01", "to": "2026-02-28"}
    months = await client.get(
        "/reports/sales-summary", params={**period, "group_by": "month"}, headers=staff
    )
    assert [(p["period"], p["units"]) for p in months.json()["by_period"]] == [
        ("2026-01-01", 1),
        ("2026-02-01", 5),
    ]
    weeks = await client.get(
        "/reports/sales-summary", params={**period, "group_by": "week"}, headers=staff
    )
    assert [(p["period"], p["units"]) for p in weeks.json()["by_period"]] == [
        ("2026-01-26", 3),
        ("2026-02-02", 3),
    ]


async def test_summary_defaults_to_the_last_30_days(
    client: httpx.AsyncClient, staff: dict[str, str], sell: Sell
) -> None:
    now = datetime.now(UTC)
    await sell(now, OrderStatus.CONFIRMED, (EMMA, "Emma", 1, 500))
    await sell(now - timedelta(days=40), OrderStatus.CONFIRMED, (EMMA, "Emma", 1, 500))
    summary = (await client.get("/reports/sales-summary", headers=staff)).json()
    today = now.date()
    assert (summary["from"], summary["to"]) == (str(today - timedelta(days=29)), str(today))
    assert (summary["orders"], summary["revenue_cents"]) == (1, 500)


async def test_top_sellers_rank_books_by_copies_sold(
    client: httpx.AsyncClient, staff: dict[str, str], sell: Sell
) -> None:
    day = datetime.now(UTC).date().isoformat()
    await sell(_at(day), OrderStatus.CONFIRMED, (EMMA, "Emma", 2, 899), (DUNE, "Dune", 1, 1099))
    await sell(_at(day), OrderStatus.SHIPPED, (DUNE, "Dune", 4, 1099))
    await sell(_at(day), OrderStatus.CANCELLED, (EMMA, "Emma", 10, 899))
    reply = await client.get("/reports/top-sellers", params={"from": day, "to": day}, headers=staff)
    assert reply.status_code == 200, reply.text
    assert reply.json() == [
        {"book_id": str(DUNE), "title": "Dune", "units": 5, "revenue_cents": 5 * 1099},
        {"book_id": str(EMMA), "title": "Emma", "units": 2, "revenue_cents": 2 * 899},
    ]
    one = await client.get(
        "/reports/top-sellers", params={"from": day, "to": day, "limit": 1}, headers=staff
    )
    assert [b["title"] for b in one.json()] == ["Dune"]


@pytest.mark.parametrize("route", ["/reports/sales-summary", "/reports/top-sellers"])
async def test_bad_periods_are_refused(
    client: httpx.AsyncClient, staff: dict[str, str], route: str
) -> None:
    backwards = {"from": "2026-03-05", "to": "2026-03-01"}
    assert_problem(await client.get(route, params=backwards, headers=staff), 422, "bad_period")
    assert_problem(await client.get(route, params={"from": "March"}, headers=staff), 422)


@pytest.mark.parametrize("route", ["/reports/sales-summary", "/reports/top-sellers"])
async def test_customers_and_strangers_are_refused(
    client: httpx.AsyncClient, identity_secret: str, route: str
) -> None:
    customer = assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["customer"])
    assert_problem(await client.get(route, headers=customer), 403)
    assert_problem(await client.get(route, headers=assertion_headers(identity_secret)), 401)


async def test_dates_are_written_year_month_day(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    for bad in ("0", "1700000000", "2026-3-1", "March"):
        reply = await client.get("/reports/sales-summary", params={"to": bad}, headers=staff)
        assert_problem(reply, 422)
