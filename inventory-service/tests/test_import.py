"""Bulk import: CSV or JSON, all or nothing, upsert by ISBN, stock through the ledger."""

import csv
import io
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from stdnum import ean

from bookstore_testing.harness import assert_problem

CreateBook = Callable[..., Awaitable[dict[str, Any]]]
HEADER = "isbn,title,author,category,price_cents,stock,description,published_year\n"
CSV = {"Content-Type": "text/csv"}


def _isbn(n: int) -> str:
    """A valid ISBN-13 for each n."""
    stem = f"978{n:09d}"
    return stem + ean.calc_check_digit(stem)


def _csv(*rows: str) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


async def _import(
    client: httpx.AsyncClient, headers: dict[str, str], body: str | bytes, **params: Any
) -> httpx.Response:
    return await client.post(
        "/books/import", content=body, params=params, headers={**CSV, **headers}
    )


async def _by_isbn(client: httpx.AsyncClient, staff: dict[str, str], isbn: str) -> dict[str, Any]:
    reply = await client.get(f"/books/isbn/{isbn}", headers=staff)
    assert reply.status_code == 200, reply.text
    book: dict[str, Any] = reply.json()
    return book


async def test_csv_creates_updates_and_a_second_import_changes_nothing(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    known = await create_book(isbn=_isbn(1), title="Old title", stock=3)
    body = _csv(
        f"{_isbn(1)},New title,Jane Austen,Classics,999,10,,1813",
        f'{_isbn(2)},"Dune, the novel",Frank Herbert,Science Fiction,1099,4,"Sand, spice",1965',
    )
    reply = await _import(client, staff, body)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"created": 1, "updated": 1, "unchanged": 0, "errors": []}
    updated = await _by_isbn(client, staff, _isbn(1))
    assert (updated["id"], updated["title"], updated["price_cents"]) == (
        known["id"],
        "New title",
        999,
    )
    assert (updated["available"], updated["published_year"]) == (10, 1813)
    dune = await _by_isbn(client, staff, _isbn(2))
    assert (dune["title"], dune["description"], dune["available"]) == (
        "Dune, the novel",
        "Sand, spice",
        4,
    )
    ledger = await client.get(f"/books/{known['id']}/stock-adjustments", headers=staff)
    assert [(e["delta"], e["reason"]) for e in ledger.json()["data"]] == [(7, "correction")]

    again = await _import(client, staff, body)
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 2, "errors": []}
    ledger = await client.get(f"/books/{known['id']}/stock-adjustments", headers=staff)
    assert ledger.json()["count"] == 1


async def test_json_array_imports_the_same_way(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    books = [
        {
            "isbn": _isbn(3),
            "title": "Emma",
            "author": "Jane Austen",
            "category": "Classics",
            "price_cents": 799,
            "stock": 2,
        },
    ]
    reply = await client.post("/books/import", json=books, headers=staff)
    assert reply.status_code == 200, reply.text
    assert reply.json()["created"] == 1
    assert (await _by_isbn(client, staff, _isbn(3)))["available"] == 2


async def test_any_bad_row_refuses_the_whole_file_naming_each_error(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    body = _csv(
        f"{_isbn(4)},Good,Someone,Fiction,100,1,,",
        "9780000000000,Bad ISBN,Someone,Fiction,100,1,,",
        f"{_isbn(5)},,Someone,Fiction,-5,1,,",
        f"{_isbn(4)},Twice,Someone,Fiction,100,1,,",
    )
    problem = assert_problem(await _import(client, staff, body), 422, "import_invalid")
    errors = {(e["row"], e["field"]) for e in problem["errors"]}
    assert errors == {(3, "isbn"), (4, "title"), (4, "price_cents"), (5, "isbn")}
    assert_problem(await client.get(f"/books/isbn/{_isbn(4)}", headers=staff), 404)


async def test_bad_headers_and_formats_are_refused(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    problem = assert_problem(await _import(client, staff, "isbn,title,colour\n"), 422)
    assert {(e["row"], e["field"]) for e in problem["errors"]} == {
        (1, "author"),
        (1, "category"),
        (1, "price_cents"),
        (1, "stock"),
        (1, "colour"),
    }
    assert_problem(await client.post("/books/import", json={"isbn": "x"}, headers=staff), 422)
    plain = {**staff, "Content-Type": "text/plain"}
    assert_problem(
        await client.post("/books/import", content="x", headers=plain),
        415,
        "unsupported_media_type",
    )


async def test_dry_run_checks_and_counts_but_writes_nothing(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    reply = await _import(
        client, staff, _csv(f"{_isbn(6)},Dry,Someone,Fiction,100,1,,"), dry_run="true"
    )
    assert reply.json() == {"created": 1, "updated": 0, "unchanged": 0, "errors": []}
    assert_problem(await client.get(f"/books/isbn/{_isbn(6)}", headers=staff), 404)


async def test_ten_thousand_rows_import_in_under_ten_seconds(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER.strip().split(","))
    for n in range(10_000):
        writer.writerow(
            [_isbn(100_000 + n), f"Book {n}", "Author", "Fiction", 500 + n, n % 7, "", ""]
        )
    started = time.perf_counter()
    reply = await _import(client, staff, out.getvalue())
    elapsed = time.perf_counter() - started
    assert reply.status_code == 200, reply.text
    assert reply.json()["created"] == 10_000
    assert elapsed < 10, f"{elapsed:.1f} s"
    over = HEADER + "".join(f"{_isbn(200_000 + n)},B,A,F,1,1,,\n" for n in range(10_001))
    problem = assert_problem(await _import(client, staff, over), 422)
    assert "at most 10000" in problem["errors"][0]["message"]


@pytest.mark.parametrize("who", ["customer", "anonymous"])
async def test_customers_and_strangers_may_not_import(
    client: httpx.AsyncClient, request: pytest.FixtureRequest, who: str
) -> None:
    headers = request.getfixturevalue(who)
    reply = await _import(client, headers, _csv(f"{_isbn(7)},X,Y,Z,1,1,,"))
    assert_problem(reply, 403 if who == "customer" else 401)


async def test_body_over_five_mib_is_refused(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    assert_problem(await _import(client, staff, b"x" * (5 * 1024 * 1024 + 1)), 413)
    # The other routes keep their 1 MiB limit.
    big = {"isbn": _isbn(8), "title": "x" * (1024 * 1024)}
    assert_problem(await client.post("/books", json=big, headers=staff), 413)


async def test_json_numbers_must_be_numbers(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    row = {"isbn": _isbn(9), "title": "T", "author": "A", "category": "C", "price_cents": 1}
    for stock in (False, "3", 1.5):
        reply = await client.post("/books/import", json=[{**row, "stock": stock}], headers=staff)
        problem = assert_problem(reply, 422, "import_invalid")
        assert [(e["row"], e["field"]) for e in problem["errors"]] == [(1, "stock")]
