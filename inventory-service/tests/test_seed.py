from typing import Any

import asyncpg
from stdnum import isbn

from bookstore_shared.db import asyncpg_dsn
from inventory.config import Settings
from inventory.seed import CATALOG, DESCRIPTIONS, seed_catalog


async def test_seed_catalog_twice_adds_each_book_once(
    client: Any, service_settings: dict[str, Any]
) -> None:
    settings = Settings(**service_settings)
    first = await seed_catalog(settings)
    second = await seed_catalog(settings)
    assert first.startswith(f"catalog seeded: {len(CATALOG)} books added")
    assert second.startswith("catalog seeded: 0 books added")
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        assert await conn.fetchval("SELECT count(*) FROM inventory.books") == len(CATALOG)
    finally:
        await conn.close()


def test_seed_catalog_is_varied_and_real() -> None:
    isbns = [row[0] for row in CATALOG]
    assert len(CATALOG) >= 50
    assert len(set(isbns)) == len(isbns)
    assert all(isbn.is_valid(i) and len(i) == 13 for i in isbns)
    assert len({row[3] for row in CATALOG}) >= 5
    stocks = [row[5] for row in CATALOG]
    assert sum(s == 0 for s in stocks) >= 3
    assert sum(0 < s < 5 for s in stocks) >= 3


async def test_every_demo_book_has_a_description_and_old_placeholders_are_filled_in(
    client: Any, service_settings: dict[str, Any]
) -> None:
    assert set(DESCRIPTIONS) == {row[0] for row in CATALOG}
    assert all(len(text) >= 200 and text.count(". ") >= 2 for text in DESCRIPTIONS.values())
    settings = Settings(**service_settings)
    await seed_catalog(settings)
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        # A catalog seeded before the descriptions existed: "<title> by <author>."
        await conn.execute(
            "UPDATE inventory.books SET description = title || ' by ' || author || '.' "
            "WHERE isbn IN ('9780141439518', '9780141439587')"
        )
        assert (await seed_catalog(settings)).endswith(", 2 descriptions filled in")
        assert (await seed_catalog(settings)).endswith("already present")
        emma = await conn.fetchval(
            "SELECT description FROM inventory.books WHERE isbn = '9780141439587'"
        )
        assert emma == DESCRIPTIONS["9780141439587"]
    finally:
        await conn.close()
