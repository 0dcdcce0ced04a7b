import json
import uuid
from pathlib import Path

import asyncpg
from sqlmodel import SQLModel

import inventory
from bookstore_shared.db import asyncpg_dsn
from bookstore_shared.messages import BookChanged, Envelope
from bookstore_testing.harness import assert_migrations_round_trip, migrate
from bookstore_testing.infra import Databases
from inventory import models


async def test_migrations_upgrade_downgrade_upgrade(databases: Databases) -> None:
    url = await databases.create("mig_inventory")
    await assert_migrations_round_trip(
        url, Path(inventory.__file__).parent / "migrations", models.SCHEMA, SQLModel.metadata
    )


async def test_books_made_before_book_changed_are_announced_once_migrated(
    databases: Databases,
) -> None:
    url = await databases.create("mig_announce")
    migrations_dir = Path(inventory.__file__).parent / "migrations"
    await migrate(migrations_dir, url, "0005")
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        book_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO inventory.books (id, isbn, title, author, category, price_cents, "
            "available, reserved, sold, deleted_at, created_at, updated_at) VALUES "
            "($1, '9780141439518', 'Emma', 'Jane Austen', 'Classics', 799, 1, 0, 0, now(), "
            "now(), now())",
            book_id,
        )
        await migrate(migrations_dir, url)
        rows = await conn.fetch("SELECT type, correlation_id, body FROM inventory.outbox")
    finally:
        await conn.close()
    assert [(r["type"], r["correlation_id"]) for r in rows] == [("BookChanged", book_id)]
    message = Envelope.model_validate(json.loads(rows[0]["body"])).message()
    assert isinstance(message, BookChanged)
    assert (message.book_id, message.title, message.price_cents, message.deleted) == (
        book_id,
        "Emma",
        799,
        True,
    )
