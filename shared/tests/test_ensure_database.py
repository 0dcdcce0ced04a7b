import asyncio

import asyncpg

from bookstore_shared.db import asyncpg_dsn, ensure_database
from bookstore_testing.infra import Databases


async def test_ensure_database_raced_by_four_apps_creates_it_once(databases: Databases) -> None:
    url = databases.url_for(f"bookstore_test_{databases.run_id}_race")
    databases.created.append(url.rsplit("/", 1)[1])  # dropped with the run's other databases
    created = await asyncio.gather(*(ensure_database(url) for _ in range(4)))
    assert sorted(created) == [False, False, False, True]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    await conn.close()
