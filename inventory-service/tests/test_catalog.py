from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

CreateBook = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def shelf(create_book: CreateBook) -> list[dict[str, Any]]:
    return [
        await create_book(
            isbn="9780141439518",
            title="Pride and Prejudice",
            author="Jane Austen",
            category="Classics",
            price_cents=899,
        ),
        await create_book(
            isbn="9780141439587",
            title="Emma",
            author="Jane Austen",
            category="Classics",
            price_cents=799,
        ),
        await create_book(
            isbn="9780441172719",
            title="Dune",
            author="Frank Herbert",
            category="Science Fiction",
            price_cents=1099,
            description="Spice, sand and prophecy on Arrakis.",
        ),
        await create_book(
            isbn="9780553293357",
            title="Foundation",
            author="Isaac Asimov",
            category="Science Fiction",
            price_cents=899,
        ),
    ]


async def test_list_books_pages_with_total_count(
    client: httpx.AsyncClient, anonymous: dict[str, str], shelf: list[dict[str, Any]]
) -> None:
    first = (await client.get("/books?size=3&page=1", headers=anonymous)).json()
    second = (await client.get("/books?size=3&page=2", headers=anonymous)).json()
    assert (first["count"], first["page"], first["size"], len(first["data"])) == (4, 1, 3, 3)
    assert len(second["data"]) == 1
    seen = {b["id"] for b in first["data"] + second["data"]}
    assert seen == {b["id"] for b in shelf}


@pytest.mark.parametrize("query", ["size=101", "size=0", "page=0", "sort=price", "size=abc"])
async def test_list_books_with_bad_paging_or_sort_is_rejected(
    client: httpx.AsyncClient, anonymous: dict[str, str], query: str
) -> None:
    reply = await client.get(f"/books?{query}", headers=anonymous)
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"


async def test_list_books_full_text_search_matches_description_and_title(
    client: httpx.AsyncClient, anonymous: dict[str, str], shelf: list[dict[str, Any]]
) -> None:
    by_description = (await client.get("/books?q=prophecy", headers=anonymous)).json()
    assert [b["title"] for b in by_description["data"]] == ["Dune"]
    by_stem = (await client.get("/books?q=prejudices", headers=anonymous)).json()
    assert [b["title"] for b in by_stem["data"]] == ["Pride and Prejudice"]


async def test_list_books_search_ranks_title_above_author(
    client: httpx.AsyncClient, anonymous: dict[str, str], create_book: CreateBook
) -> None:
    await create_book(
        isbn="9780141439600",
        title="A Tale of Two Cities",
        author="Emma Dickens",
        category="Classics",
    )
    await create_book(isbn="9780141439587", title="Emma", author="Jane Austen", category="Classics")
    found = (await client.get("/books?q=emma", headers=anonymous)).json()
    assert [b["title"] for b in found["data"]] == ["Emma", "A Tale of Two Cities"]


async def test_list_books_filters_by_author_and_category(
    client: httpx.AsyncClient, anonymous: dict[str, str], shelf: list[dict[str, Any]]
) -> None:
    austen = (await client.get("/books?author=austen", headers=anonymous)).json()
    assert sorted(b["title"] for b in austen["data"]) == ["Emma", "Pride and Prejudice"]
    scifi = (await client.get("/books?category=science fiction", headers=anonymous)).json()
    assert sorted(b["title"] for b in scifi["data"]) == ["Dune", "Foundation"]
    none = (
        await client.get("/books?author=austen&category=Science Fiction", headers=anonymous)
    ).json()
    assert none["count"] == 0


async def test_list_books_author_filter_treats_wildcards_literally(
    client: httpx.AsyncClient, anonymous: dict[str, str], shelf: list[dict[str, Any]]
) -> None:
    reply = (await client.get("/books?author=%25", headers=anonymous)).json()
    assert reply["count"] == 0


async def test_list_books_sorts_by_price_descending(
    client: httpx.AsyncClient, anonymous: dict[str, str], shelf: list[dict[str, Any]]
) -> None:
    found = (await client.get("/books?sort=-price_cents", headers=anonymous)).json()
    prices = [b["price_cents"] for b in found["data"]]
    assert prices == sorted(prices, reverse=True)
    assert prices[0] == 1099


async def test_list_categories_counts_books(
    client: httpx.AsyncClient, anonymous: dict[str, str], shelf: list[dict[str, Any]]
) -> None:
    reply = (await client.get("/books/categories", headers=anonymous)).json()
    assert reply == [{"name": "Classics", "books": 2}, {"name": "Science Fiction", "books": 2}]
