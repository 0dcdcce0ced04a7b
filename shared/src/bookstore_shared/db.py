"""Database access: one async engine per app, and a unit of work that commits or rolls back.

The entrypoint owns the transaction: a request's session commits after the route returns
(before the response is sent) and rolls back if anything raised. Service functions may
flush, never commit.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bookstore_shared.settings import ServiceSettings

AfterCommit = Callable[[dict[Any, Any]], None]


_ON_COMMIT = "on_commit"


def on_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's unit of work has committed; never if it rolls back
    (so a transaction retried after a deadlock counts once, say)."""
    session.info.setdefault(_ON_COMMIT, []).append(callback)


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 0,
        pool_timeout: float = 5.0,
        statement_timeout_ms: int | None = None,
        lock_timeout_ms: int | None = None,
    ) -> None:
        self.url = url
        self.capacity = pool_size + max_overflow  # connections this process may hold at most
        # Called with session.info after each successful commit (the outbox relay listens).
        self.after_commit: list[AfterCommit] = []
        server_settings = {
            name: str(value)
            for name, value in (
                ("statement_timeout", statement_timeout_ms),
                ("lock_timeout", lock_timeout_ms),
            )
            if value is not None
        }
        # No pre-ping (a round trip per checkout): a connection found dead fails its one
        # request or message, which is retried, and SQLAlchemy then refreshes the pool.
        self.engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            pool_recycle=1800,
            connect_args={"server_settings": server_settings} if server_settings else {},
        )
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> "Database":
        """The app's pool, sized and limited as its settings say (the Postgres budget)."""
        return cls(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            lock_timeout_ms=settings.db_lock_timeout_ms,
        )

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            for hook in self.after_commit:
                hook(session.info)
            for callback in session.info.pop(_ON_COMMIT, ()):
                callback()

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[AsyncSession]:
        """A session for reads that need no snapshot across statements: no transaction, so
        no BEGIN and ROLLBACK round trips around them."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            async with AsyncSession(bind=conn) as session:
                yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    db: Database = request.app.state.db
    async with db.unit_of_work() as session:
        yield session


# scope="function": the commit runs before the response is sent, so a client that got a 2xx
# can read its own write, and a failed commit becomes an error response instead of a lie.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL in the form asyncpg itself accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def ensure_database(url: str) -> bool:
    """Create the database named in `url` if it does not exist. True if it was created."""
    sa_url = make_url(url)
    name = sa_url.database
    maintenance = asyncpg_dsn(sa_url.set(database="postgres").render_as_string(False))
    conn = await asyncpg.connect(maintenance, timeout=5)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            return False  # another app created it at the same moment
        return True
    finally:
        await conn.close()
