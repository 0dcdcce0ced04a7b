"""The stock ledger (staff adjust a book's stock, with a reason) and restoring withdrawn books."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bookstore_testing.harness import assert_problem, assertion_headers

CreateBook = Callable[..., Awaitable[dict[str, Any]]]


async def _adjust(
    client: httpx.AsyncClient, book: dict[str, Any], headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await client.post(f"/books/{book['id']}/stock-adjustments", json=body, headers=headers)


async def _available(
    client: httpx.AsyncClient, book: dict[str, Any], headers: dict[str, str]
) -> int:
    reply = await client.get(f"/books/{book['id']}", headers=headers)
    available: int = reply.json()["available"]
    return available


async def test_restock_adds_copies_and_is_recorded_with_its_actor(
    client: httpx.AsyncClient, identity_secret: str, create_book: CreateBook
) -> None:
    book = await create_book(stock=3)
    actor = uuid.uuid4()
    clerk = assertion_headers(identity_secret, user_id=actor, roles=["staff"])
    reply = await _adjust(client, book, clerk, delta=5, reason="restock", note="from the printer")
    assert reply.status_code == 201, reply.text
    entry = reply.json()
    assert (entry["book_id"], entry["delta"], entry["reason"]) == (book["id"], 5, "restock")
    assert (entry["note"], entry["available_after"], entry["actor"]) == (
        "from the printer",
        8,
        str(actor),
    )
    assert await _available(client, book, clerk) == 8


async def test_taking_more_than_available_is_a_conflict_and_changes_nothing(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book(stock=2)
    problem = assert_problem(
        await _adjust(client, book, staff, delta=-3, reason="damaged"), 409, "insufficient_stock"
    )
    assert problem["available"] == 2
    assert await _available(client, book, staff) == 2
    ledger = await client.get(f"/books/{book['id']}/stock-adjustments", headers=staff)
    assert ledger.json()["count"] == 0


async def test_concurrent_takings_never_go_below_zero(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book(stock=5)
    replies = await asyncio.gather(
        *(_adjust(client, book, staff, delta=-1, reason="lost") for _ in range(8))
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] * 5 + [409] * 3
    assert await _available(client, book, staff) == 0
    after = sorted(r.json()["available_after"] for r in replies if r.status_code == 201)
    assert after == [0, 1, 2, 3, 4]


async def test_ledger_lists_newest_first_a_page_at_a_time(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book(stock=0)
    for delta in (1, 2, 3):
        assert (await _adjust(client, book, staff, delta=delta, reason="found")).status_code == 201
    reply = await client.get(
        f"/books/{book['id']}/stock-adjustments", params={"size": 2}, headers=staff
    )
    page = reply.json()
    assert (page["count"], page["page"], page["size"]) == (3, 1, 2)
    assert [e["delta"] for e in page["data"]] == [3, 2]
    last = await client.get(
        f"/books/{book['id']}/stock-adjustments", params={"size": 2, "page": 2}, headers=staff
    )
    assert [e["delta"] for e in last.json()["data"]] == [1]


async def test_bad_adjustments_are_refused_with_problems(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book()
    assert_problem(await _adjust(client, book, staff, delta=0, reason="restock"), 422)
    assert_problem(await _adjust(client, book, staff, delta=1, reason="gift"), 422)
    assert_problem(await _adjust(client, book, staff, reason="restock"), 422)
    missing = {"id": str(uuid.uuid4())}
    assert_problem(
        await _adjust(client, missing, staff, delta=1, reason="restock"), 404, "book_not_found"
    )


async def test_customers_and_strangers_may_not_touch_the_ledger(
    client: httpx.AsyncClient,
    customer: dict[str, str],
    anonymous: dict[str, str],
    create_book: CreateBook,
) -> None:
    book = await create_book()
    assert_problem(await _adjust(client, book, customer, delta=1, reason="restock"), 403)
    assert_problem(await _adjust(client, book, anonymous, delta=1, reason="restock"), 401)
    url = f"/books/{book['id']}/stock-adjustments"
    assert_problem(await client.get(url, headers=customer), 403)
    assert_problem(await client.get(url, headers=anonymous), 401)


async def test_withdrawn_book_is_listed_for_staff_and_restored(
    client: httpx.AsyncClient,
    staff: dict[str, str],
    customer: dict[str, str],
    create_book: CreateBook,
) -> None:
    book = await create_book()
    assert (await client.delete(f"/books/{book['id']}", headers=staff)).status_code == 204
    assert_problem(await client.get(f"/books/{book['id']}", headers=customer), 404)
    withdrawn = await client.get("/books", params={"deleted": "true"}, headers=staff)
    assert [b["id"] for b in withdrawn.json()["data"]] == [book["id"]]
    assert_problem(await client.get("/books", params={"deleted": "true"}, headers=customer), 403)
    assert_problem(await client.post(f"/books/{book['id']}/restore", headers=customer), 403)

    restored = await client.post(f"/books/{book['id']}/restore", headers=staff)
    assert restored.status_code == 200, restored.text
    assert restored.json()["id"] == book["id"]
    assert (await client.get(f"/books/{book['id']}", headers=customer)).status_code == 200
    assert (await client.get("/books", params={"deleted": "true"}, headers=staff)).json()[
        "count"
    ] == 0
    again = await client.post(f"/books/{book['id']}/restore", headers=staff)
    assert again.status_code == 200  # restoring a book in the catalog changes nothing
    assert_problem(await client.post(f"/books/{uuid.uuid4()}/restore", headers=staff), 404)


async def test_low_stock_report_lists_books_running_out_fewest_first(
    client: httpx.AsyncClient,
    staff: dict[str, str],
    customer: dict[str, str],
    create_book: CreateBook,
) -> None:
    plenty = await create_book(isbn="9780141439518", title="Plenty", stock=50)
    few = await create_book(isbn="9780140268867", title="Few", stock=3)
    none = await create_book(isbn="9780553283686", title="None", stock=0)
    gone = await create_book(isbn="9780261103573", title="Gone", stock=1)
    assert (await client.delete(f"/books/{gone['id']}", headers=staff)).status_code == 204

    reply = await client.get("/reports/low-stock", headers=staff)
    assert reply.status_code == 200, reply.text
    report = reply.json()
    assert report["count"] == 2
    assert [(r["book_id"], r["available"]) for r in report["data"]] == [
        (none["id"], 0),
        (few["id"], 3),
    ]
    assert set(report["data"][0]) == {"book_id", "isbn", "title", "available", "reserved", "sold"}
    wide = await client.get("/reports/low-stock", params={"threshold": 50}, headers=staff)
    assert plenty["id"] in {r["book_id"] for r in wide.json()["data"]}
    assert_problem(
        await client.get("/reports/low-stock", params={"threshold": -1}, headers=staff), 422
    )
    assert_problem(await client.get("/reports/low-stock", headers=customer), 403)
