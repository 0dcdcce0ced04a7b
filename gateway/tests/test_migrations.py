from pathlib import Path

from sqlmodel import SQLModel

import gateway
from bookstore_testing.harness import assert_migrations_round_trip
from bookstore_testing.infra import Databases
from gateway import models


async def test_migrations_upgrade_downgrade_upgrade(databases: Databases) -> None:
    url = await databases.create("mig_gateway")
    await assert_migrations_round_trip(
        url, Path(gateway.__file__).parent / "migrations", models.SCHEMA, SQLModel.metadata
    )
