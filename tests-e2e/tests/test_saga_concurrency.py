"""Many orders at once: stock is never oversold and every saga ends."""

import asyncio
import random
from collections import Counter

import pytest

from bookstore_testing.shop import Shop

pytestmark = pytest.mark.e2e


async def test_hundred_orders_for_twenty_copies_confirm_exactly_twenty(shop: Shop) -> None:
    book = await shop.new_book(stock=20)
    customers = [await shop.new_customer() for _ in range(10)]
    replies = await asyncio.gather(
        *(shop.place_order(customers[i % 10], [(book, 1)], wait=60) for i in range(100))
    )
    assert {r.status_code for r in replies} == {201}, [
        r.text for r in replies if r.status_code != 201
    ][:3]
    outcomes = Counter((r.json()["status"], r.json()["cancel_reason"]) for r in replies)
    assert outcomes == {("confirmed", None): 20, ("cancelled", "out_of_stock"): 80}
    assert await shop.counts(book) == (0, 0, 20)


async def test_three_hundred_mixed_orders_keep_every_count_whole(shop: Shop) -> None:
    rng = random.Random(20261121)
    books = {await shop.new_book(stock=rng.randint(5, 40)): None for _ in range(20)}
    initial = {book: sum(await shop.counts(book)) for book in books}
    customers = [await shop.new_customer() for _ in range(10)]
    clients = asyncio.Semaphore(24)

    async def order(i: int) -> dict[str, object]:
        lines = rng.sample(list(books), k=rng.randint(2, 3))
        async with clients:
            reply = await shop.place_order(
                customers[i % 10], [(b, rng.randint(1, 3)) for b in lines], wait=60
            )
        assert reply.status_code == 201, reply.text
        result: dict[str, object] = reply.json()
        return result

    results = await asyncio.gather(*(order(i) for i in range(300)))
    assert {r["status"] for r in results} <= {"confirmed", "cancelled"}
    assert {r["cancel_reason"] for r in results} <= {None, "out_of_stock"}
    confirmed = [r for r in results if r["status"] == "confirmed"]
    assert confirmed, "some orders must get through"
    sold = Counter[str]()
    for r in confirmed:
        for item in r["items"]:  # type: ignore[attr-defined]
            sold[item["book_id"]] += item["quantity"]
    for book in books:
        available, reserved, book_sold = await shop.counts(book)
        assert reserved == 0, book
        assert book_sold == sold[book], book
        assert available + reserved + book_sold == initial[book], book
