"""Staff's store through the gateway: a large catalog import, and reports that follow orders."""

from datetime import UTC, datetime

import pytest

from bookstore_testing.harness import assert_problem
from bookstore_testing.shop import Shop, eventually, random_isbn

pytestmark = pytest.mark.e2e
HEADER = "isbn,title,author,category,price_cents,stock,description\n"


async def test_import_larger_than_other_bodies_passes_the_gateway(shop: Shop) -> None:
    padding = "x" * 900  # about 1 KiB a row: 2,000 rows pass the 1 MiB other bodies get
    rows = "".join(
        f"{random_isbn()},Imported {n},Author,Imports,100,1,{padding}\n" for n in range(2_000)
    )
    body = (HEADER + rows).encode()
    assert len(body) > 1024 * 1024
    headers = {**shop.staff, "Content-Type": "text/csv"}
    reply = await shop.gateway.post(
        "/api/books/import", content=body, headers=headers, params={"dry_run": "true"}, timeout=60
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["created"] == 2_000
    too_big = HEADER.encode() + b"x" * (5 * 1024 * 1024)
    too_big_reply = await shop.gateway.post("/api/books/import", content=too_big, headers=headers)
    assert_problem(too_big_reply, 413)
    other = await shop.gateway.post(
        "/api/books", content=body, headers={**shop.staff, "Content-Type": "application/json"}
    )
    assert_problem(other, 413)


async def test_a_confirmed_order_shows_in_the_reports_at_once(shop: Shop) -> None:
    book = await shop.new_book(stock=3, price_cents=1500)
    order = await shop.place_order(await shop.new_customer(), [(book, 2)])
    assert order.json()["status"] == "confirmed"
    today = datetime.now(UTC).date().isoformat()
    period = {"from": today, "to": today}

    async def sold() -> list[dict[str, object]] | None:
        top = await shop.gateway.get(
            "/api/reports/top-sellers", params={**period, "limit": 100}, headers=shop.staff
        )
        mine = [b for b in top.json() if b["book_id"] == book]
        return mine or None

    assert await eventually(sold, within=2, what="the sale in the report") == [
        {
            "book_id": book,
            "title": order.json()["items"][0]["title"],
            "units": 2,
            "revenue_cents": 3000,
        }
    ]
    summary = await shop.gateway.get(
        "/api/reports/sales-summary", params=period, headers=shop.staff
    )
    assert summary.json()["revenue_cents"] >= 3000
    low = await shop.gateway.get(
        "/api/reports/low-stock", params={"threshold": 1, "size": 100}, headers=shop.staff
    )
    assert book in {b["book_id"] for b in low.json()["data"]}
    assert_problem(await shop.gateway.get("/api/reports/low-stock", headers={}), 401)
