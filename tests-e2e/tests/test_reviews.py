"""Reviews and summaries through the gateway: a review is a verified purchase once its author's
order with the book is confirmed (inventory learns it from the saga's own messages), and stops
being one when that order is cancelled and its stock returned."""

from typing import Any

import httpx
import pytest

from bookstore_testing.harness import assert_problem
from bookstore_testing.shop import DECLINED_CARD, Shop, eventually

pytestmark = pytest.mark.e2e


async def _review(shop: Shop, book: str, who: dict[str, str], rating: int = 5) -> dict[str, Any]:
    reply = await shop.gateway.post(
        f"/api/books/{book}/reviews", json={"rating": rating, "body": "Read it twice."}, headers=who
    )
    assert reply.status_code == 201, reply.text
    review: dict[str, Any] = reply.json()
    return review


async def _verified(shop: Shop, book: str, review: dict[str, Any]) -> bool:
    reply = await shop.gateway.get(f"/api/books/{book}/reviews/{review['id']}")
    assert reply.status_code == 200, reply.text
    verified: bool = reply.json()["verified_purchase"]
    return verified


async def test_a_buyers_review_is_a_verified_purchase_until_the_order_is_cancelled(
    shop: Shop,
) -> None:
    book = await shop.new_book(stock=5)
    buyer, declined, stranger = [await shop.new_customer() for _ in range(3)]
    order = (await shop.place_order(buyer, [(book, 1)])).json()
    assert order["status"] == "confirmed"
    failed = (await shop.place_order(declined, [(book, 1)], card=DECLINED_CARD)).json()
    assert (await shop.wait_final(failed["id"], declined))["status"] == "cancelled"

    bought = await _review(shop, book, buyer, rating=5)
    assert bought["verified_purchase"] is True
    assert (await _review(shop, book, declined, rating=2))["verified_purchase"] is False
    assert (await _review(shop, book, stranger, rating=3))["verified_purchase"] is False
    shown = (await shop.gateway.get(f"/api/books/{book}")).json()
    assert (shown["rating_average"], shown["rating_count"]) == (3.3, 3)

    cancel = await shop.gateway.post(f"/api/orders/{order['id']}/cancel", headers=buyer)
    assert cancel.status_code == 202, cancel.text
    assert (await shop.wait_final(order["id"], buyer))["status"] == "cancelled"

    async def unverified() -> bool:
        return not await _verified(shop, book, bought)

    await eventually(unverified, within=15, what="the cancelled purchase to stop counting")


async def test_reviews_through_the_gateway_refuse_strangers(shop: Shop) -> None:
    book = await shop.new_book(stock=1)
    author, stranger = await shop.new_customer(), await shop.new_customer()
    review = await _review(shop, book, author, rating=4)
    url = f"/api/books/{book}/reviews/{review['id']}"
    anonymous = await shop.gateway.post(
        f"/api/books/{book}/reviews", json={"rating": 4, "body": "Hi"}
    )
    assert_problem(anonymous, 401)
    assert_problem(await shop.gateway.patch(url, json={"rating": 1}), 401)
    assert_problem(
        await shop.gateway.patch(url, json={"rating": 1}, headers=stranger),
        403,
        "not_review_author",
    )
    assert_problem(await shop.gateway.delete(url, headers=stranger), 403, "not_review_author")
    listed: httpx.Response = await shop.gateway.get(f"/api/books/{book}/reviews?sort=-rating")
    assert [r["id"] for r in listed.json()["data"]] == [review["id"]]
    assert (await shop.gateway.delete(url, headers=shop.staff)).status_code == 204


async def test_a_book_has_a_summary_of_its_description(shop: Shop) -> None:
    book = await shop.new_book(stock=1)
    description = (
        "A lighthouse keeper on a northern island keeps a log of every ship. "
        "The weather turns. "
        "One winter a ship passes that no log has ever named, and the keeper follows its lights. "
        "The island's lighthouse keeper learns what the ship carries and why no log names it."
    )
    changed = await shop.gateway.patch(
        f"/api/books/{book}", json={"description": description}, headers=shop.staff
    )
    assert changed.status_code == 200, changed.text
    reply = await shop.gateway.get(f"/api/books/{book}/summary")
    assert reply.status_code == 200, reply.text
    summary = reply.json()
    assert (summary["book_id"], summary["provider"]) == (book, "local")
    assert 0 < len(summary["summary"]) < len(description)
    assert all(sentence in description for sentence in summary["summary"].split(". "))
