from pathlib import Path

from sqlmodel import SQLModel

import sales
from bookstore_testing.harness import assert_migrations_round_trip
from bookstore_testing.infra import Databases
from sales import models


async def test_migrations_upgrade_downgrade_upgrade(databases: Databases) -> None:
    url = await databases.create("mig_sales")
    await assert_migrations_round_trip(
        url, Path(sales.__file__).parent / "migrations", models.SCHEMA, SQLModel.metadata
    )
