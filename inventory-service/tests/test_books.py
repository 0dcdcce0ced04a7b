import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bookstore_testing.harness import assert_problem

CreateBook = Callable[..., Awaitable[dict[str, Any]]]
BODY = {
    "isbn": "9780141439518",
    "title": "Pride and Prejudice",
    "author": "Jane Austen",
    "category": "Classics",
    "price_cents": 899,
    "stock": 12,
}


async def test_create_book_as_staff_returns_staff_view(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    reply = await client.post("/books", json=BODY, headers=staff)
    assert reply.status_code == 201, reply.text
    book = reply.json()
    assert book["isbn"] == "9780141439518"
    assert (book["available"], book["reserved"], book["sold"]) == (12, 0, 0)
    assert reply.headers["location"] == f"/api/books/{book['id']}"


async def test_create_book_normalizes_isbn10_to_isbn13(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    reply = await client.post("/books", json={**BODY, "isbn": "0-14-143951-3"}, headers=staff)
    assert reply.status_code == 201, reply.text
    assert reply.json()["isbn"] == "9780141439518"


async def test_create_book_as_customer_is_forbidden(
    client: httpx.AsyncClient, customer: dict[str, str]
) -> None:
    assert_problem(await client.post("/books", json=BODY, headers=customer), 403, "forbidden")


async def test_create_book_anonymously_is_unauthorized(
    client: httpx.AsyncClient, anonymous: dict[str, str]
) -> None:
    assert_problem(await client.post("/books", json=BODY, headers=anonymous), 401)


@pytest.mark.parametrize("isbn", ["9780141439519", "12345", "not-an-isbn"])
async def test_create_book_with_invalid_isbn_is_rejected(
    client: httpx.AsyncClient, staff: dict[str, str], isbn: str
) -> None:
    problem = assert_problem(
        await client.post("/books", json={**BODY, "isbn": isbn}, headers=staff), 422
    )
    assert problem["errors"][0]["loc"] == ["body", "isbn"]


@pytest.mark.parametrize("field", ["reserved", "sold", "id", "deleted_at"])
async def test_create_book_with_internal_field_is_rejected(
    client: httpx.AsyncClient, staff: dict[str, str], field: str
) -> None:
    assert_problem(await client.post("/books", json={**BODY, field: 1}, headers=staff), 422)


async def test_create_book_with_negative_price_is_rejected(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    assert_problem(
        await client.post("/books", json={**BODY, "price_cents": -1}, headers=staff), 422
    )


async def test_create_book_with_taken_isbn_conflicts(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    await create_book()
    reply = await client.post("/books", json={**BODY, "isbn": "0141439513"}, headers=staff)
    assert_problem(reply, 409, "isbn_taken")


async def test_create_book_with_malformed_json_is_a_problem(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    reply = await client.post(
        "/books", content=b'{"isbn": ', headers={**staff, "content-type": "application/json"}
    )
    assert_problem(reply, 422, "validation_error")


async def test_get_book_as_customer_hides_reserved_and_sold(
    client: httpx.AsyncClient, customer: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    reply = await client.get(f"/books/{book['id']}", headers=customer)
    assert reply.status_code == 200
    assert reply.json()["available"] == 12
    assert "reserved" not in reply.json()
    assert "sold" not in reply.json()


async def test_get_book_as_staff_shows_every_count(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    reply = await client.get(f"/books/{book['id']}", headers=staff)
    assert {"available", "reserved", "sold"} <= reply.json().keys()


async def test_get_book_for_anyone_but_staff_may_be_shared_and_revalidated(
    client: httpx.AsyncClient,
    customer: dict[str, str],
    staff: dict[str, str],
    create_book: CreateBook,
) -> None:
    book = await create_book()
    public = await client.get(f"/books/{book['id']}", headers=customer)
    assert public.headers["cache-control"] == "public, max-age=1"
    etag = public.headers["etag"]
    again = await client.get(f"/books/{book['id']}", headers={**customer, "If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    staff_view = await client.get(f"/books/{book['id']}", headers=staff)
    assert staff_view.headers["cache-control"] == "private, no-store"
    assert staff_view.headers["etag"] != etag  # another view, another tag
    await client.patch(f"/books/{book['id']}", json={"price_cents": 999}, headers=staff)
    changed = await client.get(f"/books/{book['id']}", headers={**customer, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["price_cents"] == 999


async def test_get_missing_book_is_not_found(
    client: httpx.AsyncClient, anonymous: dict[str, str]
) -> None:
    assert_problem(
        await client.get(f"/books/{uuid.uuid4()}", headers=anonymous), 404, "book_not_found"
    )


async def test_get_book_by_isbn10_finds_its_isbn13(
    client: httpx.AsyncClient, anonymous: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    reply = await client.get("/books/isbn/0-14-143951-3", headers=anonymous)
    assert reply.status_code == 200
    assert reply.json()["id"] == book["id"]


async def test_get_book_by_invalid_isbn_is_rejected(
    client: httpx.AsyncClient, anonymous: dict[str, str]
) -> None:
    assert_problem(await client.get("/books/isbn/123", headers=anonymous), 422)


async def test_update_book_changes_only_given_fields(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    reply = await client.patch(f"/books/{book['id']}", json={"price_cents": 999}, headers=staff)
    assert reply.status_code == 200, reply.text
    assert reply.json()["price_cents"] == 999
    assert reply.json()["title"] == book["title"]
    assert reply.json()["updated_at"] > book["updated_at"]


async def test_update_book_cannot_touch_stock_counts(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    reply = await client.patch(f"/books/{book['id']}", json={"available": 500}, headers=staff)
    assert_problem(reply, 422)


async def test_update_book_as_customer_is_forbidden(
    client: httpx.AsyncClient, customer: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    reply = await client.patch(f"/books/{book['id']}", json={"price_cents": 1}, headers=customer)
    assert_problem(reply, 403)


async def test_delete_book_withdraws_it_from_the_catalog(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    assert (await client.delete(f"/books/{book['id']}", headers=staff)).status_code == 204
    assert_problem(await client.get(f"/books/{book['id']}", headers=staff), 404)
    listing = (await client.get("/books", headers=staff)).json()
    assert listing["count"] == 0
    # Withdrawn, not erased: its ISBN stays taken.
    assert_problem(await client.post("/books", json=BODY, headers=staff), 409, "isbn_taken")


async def test_delete_book_as_customer_is_forbidden(
    client: httpx.AsyncClient, customer: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    assert_problem(await client.delete(f"/books/{book['id']}", headers=customer), 403)


@pytest.mark.parametrize("field", ["title", "author", "category", "price_cents"])
async def test_update_book_cannot_clear_a_required_field(
    client: httpx.AsyncClient, staff: dict[str, str], field: str
) -> None:
    created = (await client.post("/books", json=BODY, headers=staff)).json()
    reply = await client.patch(f"/books/{created['id']}", json={field: None}, headers=staff)
    assert_problem(reply, 422, "validation_error")
    cleared = await client.patch(
        f"/books/{created['id']}", json={"description": None}, headers=staff
    )
    assert cleared.status_code == 200
    assert cleared.json()["description"] is None
