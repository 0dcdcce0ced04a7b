from pathlib import Path

from sqlmodel import SQLModel

import delivery
from bookstore_testing.harness import assert_migrations_round_trip
from bookstore_testing.infra import Databases
from delivery import models


async def test_migrations_upgrade_downgrade_upgrade(databases: Databases) -> None:
    url = await databases.create("mig_delivery")
    await assert_migrations_round_trip(
        url, Path(delivery.__file__).parent / "migrations", models.SCHEMA, SQLModel.metadata
    )
