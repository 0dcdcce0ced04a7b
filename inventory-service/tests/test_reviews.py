"""Reviews: one per account and book, the author changes or deletes theirs, staff delete any;
the book shows their average (one decimal) and count. Verified purchases come from the saga's
messages and are tested end to end (tests-e2e/tests/test_reviews.py)."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bookstore_testing.harness import assert_problem, assertion_headers

pytestmark = pytest.mark.usefixtures("anonymous_by_default")
CreateBook = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def reader(identity_secret: str) -> Callable[[], dict[str, str]]:
    """A new signed-in customer each call."""
    return lambda: assertion_headers(identity_secret, user_id=uuid.uuid4(), roles=["customer"])


async def _review(
    client: httpx.AsyncClient, book: dict[str, Any], headers: dict[str, str], **body: Any
) -> httpx.Response:
    body = {"rating": 4, "body": "Witty and sharp.", **body}
    return await client.post(f"/books/{book['id']}/reviews", json=body, headers=headers)


async def _book(client: httpx.AsyncClient, book: dict[str, Any]) -> dict[str, Any]:
    reply = await client.get(f"/books/{book['id']}")
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


async def test_a_review_is_created_once_per_account_and_counted_on_the_book(
    client: httpx.AsyncClient, customer: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    assert ((await _book(client, book))["rating_average"], book["rating_count"]) == (None, 0)
    reply = await _review(client, book, customer, rating=5, title="A delight")
    assert reply.status_code == 201, reply.text
    review = reply.json()
    assert reply.headers["location"] == f"/api/books/{book['id']}/reviews/{review['id']}"
    assert (review["rating"], review["title"], review["body"]) == (
        5,
        "A delight",
        "Witty and sharp.",
    )
    assert (review["book_id"], review["verified_purchase"]) == (book["id"], False)
    shown = await _book(client, book)
    assert (shown["rating_average"], shown["rating_count"]) == (5.0, 1)

    again = assert_problem(await _review(client, book, customer, rating=1), 409, "review_exists")
    assert again["review_id"] == review["id"]
    shown = await _book(client, book)
    assert (shown["rating_average"], shown["rating_count"]) == (5.0, 1)


async def test_the_average_has_one_decimal_and_the_list_sorts_and_pages(
    client: httpx.AsyncClient, reader: Callable[[], dict[str, str]], create_book: CreateBook
) -> None:
    book = await create_book()
    for rating in (5, 3, 4):
        assert (await _review(client, book, reader(), rating=rating)).status_code == 201
    shown = await _book(client, book)
    assert (shown["rating_average"], shown["rating_count"]) == (4.0, 3)
    assert (await _review(client, book, reader(), rating=5)).status_code == 201
    assert (await _book(client, book))["rating_average"] == 4.3  # 17 / 4 = 4.25

    newest = (await client.get(f"/books/{book['id']}/reviews")).json()
    assert [r["rating"] for r in newest["data"]] == [5, 4, 3, 5]
    assert newest["count"] == 4
    best = (await client.get(f"/books/{book['id']}/reviews?sort=-rating&size=3")).json()
    assert [r["rating"] for r in best["data"]] == [5, 5, 4]
    second_page = await client.get(f"/books/{book['id']}/reviews?sort=-rating&size=3&page=2")
    assert [r["rating"] for r in second_page.json()["data"]] == [3]
    page = (await client.get("/books", params={"q": "Pride"})).json()
    assert (page["data"][0]["rating_average"], page["data"][0]["rating_count"]) == (4.3, 4)
    assert_problem(await client.get(f"/books/{book['id']}/reviews?sort=rating"), 422)


async def test_only_the_author_changes_a_review(
    client: httpx.AsyncClient,
    customer: dict[str, str],
    staff: dict[str, str],
    reader: Callable[[], dict[str, str]],
    create_book: CreateBook,
) -> None:
    book = await create_book()
    review = (await _review(client, book, customer, rating=2, title="Slow")).json()
    url = f"/books/{book['id']}/reviews/{review['id']}"
    for stranger in (reader(), staff):
        assert_problem(
            await client.patch(url, json={"rating": 5}, headers=stranger), 403, "not_review_author"
        )
    assert (await _book(client, book))["rating_average"] == 2.0

    changed = await client.patch(url, json={"rating": 4, "title": None}, headers=customer)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["rating"], changed.json()["title"]) == (4, None)
    assert changed.json()["updated_at"] > review["updated_at"]
    shown = await _book(client, book)
    assert (shown["rating_average"], shown["rating_count"]) == (4.0, 1)
    assert (await client.get(url)).json()["rating"] == 4


async def test_the_author_or_staff_delete_a_review_and_nobody_else(
    client: httpx.AsyncClient,
    customer: dict[str, str],
    staff: dict[str, str],
    reader: Callable[[], dict[str, str]],
    create_book: CreateBook,
) -> None:
    book = await create_book()
    mine = (await _review(client, book, customer, rating=5)).json()
    theirs = (await _review(client, book, reader(), rating=1)).json()
    url = f"/books/{book['id']}/reviews"
    assert_problem(
        await client.delete(f"{url}/{mine['id']}", headers=reader()), 403, "not_review_author"
    )
    assert (await client.delete(f"{url}/{theirs['id']}", headers=staff)).status_code == 204
    assert (await client.delete(f"{url}/{mine['id']}", headers=customer)).status_code == 204
    assert_problem(await client.get(f"{url}/{mine['id']}"), 404, "review_not_found")
    assert_problem(
        await client.delete(f"{url}/{mine['id']}", headers=customer), 404, "review_not_found"
    )
    shown = await _book(client, book)
    assert (shown["rating_average"], shown["rating_count"]) == (None, 0)
    # Deleted, the account may review the book again.
    assert (await _review(client, book, customer, rating=3)).status_code == 201


async def test_a_stranger_is_refused_and_bad_reviews_are_problems(
    client: httpx.AsyncClient,
    anonymous: dict[str, str],
    customer: dict[str, str],
    staff: dict[str, str],
    create_book: CreateBook,
) -> None:
    book = await create_book()
    assert_problem(await _review(client, book, anonymous), 401)
    for bad in (
        {"rating": 0},
        {"rating": 6},
        {"rating": True},
        {"rating": 4.5},
        {"body": ""},
        {"body": "x" * 5001},
        {"title": "t" * 121},
        {"stars": 5},
    ):
        assert_problem(await _review(client, book, customer, **bad), 422)
    assert_problem(await _review(client, {"id": uuid.uuid4()}, customer), 404, "book_not_found")
    assert (await _review(client, book, customer, body="b" * 5000)).status_code == 201
    assert (await client.delete(f"/books/{book['id']}", headers=staff)).status_code == 204
    assert_problem(await _review(client, book, staff), 404, "book_not_found")
    assert_problem(await client.get(f"/books/{book['id']}/reviews"), 404, "book_not_found")


async def test_one_account_reviewing_twice_at_once_gets_one_review(
    client: httpx.AsyncClient, customer: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    replies = await asyncio.gather(*(_review(client, book, customer) for _ in range(4)))
    assert sorted(r.status_code for r in replies) == [201, 409, 409, 409]
    assert (await _book(client, book))["rating_count"] == 1


async def test_a_new_review_changes_the_books_etag(
    client: httpx.AsyncClient, customer: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    first = await client.get(f"/books/{book['id']}")
    etag = first.headers["etag"]
    assert (
        await client.get(f"/books/{book['id']}", headers={"If-None-Match": etag})
    ).status_code == 304
    assert (await _review(client, book, customer)).status_code == 201
    after = await client.get(f"/books/{book['id']}", headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.json()["rating_count"] == 1
