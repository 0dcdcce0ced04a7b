"""Database access: one async engine per app, and a unit of work that commits or rolls back.

The entrypoint owns the transaction: a request's session commits after the route returns
(before the response is sent) and rolls back if anything raised. Service functions may
flush, never commit.

Two kinds of unit of work share the app's one pool:
- `unit_of_work()`: an ORM session (SQLAlchemy), for routes and anything that is not busy;
- `transaction()`: a `Tx`, for the busy paths (the order saga, stock moves, deliveries):
  SQLAlchemy Core builds the statements, compiled once for asyncpg (`compiled`), and asyncpg
  runs them itself. SQLAlchemy's execution layer cost more than the work on that path (a
  quarter of each app's CPU under load, by py-spy); asyncpg's own call costs a fraction.
"""

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

import asyncpg
from fastapi import Depends, Request
from opentelemetry.trace import SpanKind, Tracer
from sqlalchemy import Dialect, make_url, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql import Executable

from bookstore_shared.settings import ServiceSettings

AfterCommit = Callable[[dict[Any, Any]], None]


_ON_COMMIT = "on_commit"


class Work(Protocol):
    """A unit of work of either kind: what is to happen once it commits is kept in `info`."""

    @property
    def info(self) -> dict[Any, Any]: ...


def on_commit(work: Work, callback: Callable[[], None]) -> None:
    """Run `callback` once the unit of work has committed; never if it rolls back (so a
    transaction retried after a deadlock counts once, say)."""
    work.info.setdefault(_ON_COMMIT, []).append(callback)


Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Compiled:
    """A Core statement as asyncpg takes it: its SQL (`$1`, `$2` ...), and for each
    parameter in order its name, the bind processor of its type (an enum's value, JSON as
    text) and the value it has if none is given (a literal's)."""

    sql: str
    params: tuple[tuple[str, Processor, Any], ...]

    @property
    def operation(self) -> str:
        """Its first keyword (SELECT, UPDATE, WITH ...): what a statement's span is named."""
        return self.sql.split(None, 1)[0].upper()

    def args(self, given: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, process, default in self.params:
            value = given.get(name, default)
            if value is _MISSING:
                raise KeyError(f"no value given for :{name}")
            values.append(value if process is None or value is None else process(value))
        return values


_MISSING = object()


@functools.cache
def compiled(statement: Executable, dialect: Dialect) -> Compiled:
    """`statement` compiled for asyncpg, once per statement: busy-path statements are built
    once, at import, and kept (a statement built per call would fill this cache)."""
    result = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    params = []
    for name in result.positiontup or ():
        bind = result.binds[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        default = _MISSING if bind.required else bind.effective_value
        params.append((name, process, default))
    return Compiled(result.string, tuple(params))


@dataclass
class Tx:
    """A unit of work on one of the pool's connections, spoken to through asyncpg itself:
    Core statements in, asyncpg records out (JSON decoded, enums as their plain values). With
    a `tracer` (spans are recorded), each statement is a client span, as SQLAlchemy's
    instrumentation makes them for the ORM's."""

    connection: asyncpg.Connection
    dialect: Dialect
    tracer: Tracer | None = None
    info: dict[Any, Any] = field(default_factory=dict)

    async def rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> list[asyncpg.Record]:
        return await self._run(self.connection.fetch, statement, params)  # type: ignore[no-any-return]

    async def row(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> asyncpg.Record | None:
        return await self._run(self.connection.fetchrow, statement, params)

    async def value(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        return await self._run(self.connection.fetchval, statement, params)

    async def _run(
        self,
        call: Callable[..., Awaitable[Any]],
        statement: Executable,
        params: Mapping[str, Any] | None,
    ) -> Any:
        query = compiled(statement, self.dialect)
        args = query.args(params or {})
        if self.tracer is None:
            return await call(query.sql, *args)
        with self.tracer.start_as_current_span(
            query.operation,
            kind=SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.statement": query.sql},
        ):
            return await call(query.sql, *args)


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
        # Set where spans are recorded (`Telemetry.watch_database`): each `Tx` statement a span.
        self.tracer: Tracer | None = None

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
            self._committed(session.info)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A `Tx` in a transaction: committed when the block ends, rolled back if it raises."""
        async with self._raw() as tx, tx.connection.transaction():
            yield tx
        self._committed(tx.info)

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Tx]:
        """A `Tx` with no transaction around its statements: each is committed on its own
        (no BEGIN and COMMIT round trips), for reads and for single-statement writes."""
        async with self._raw() as tx:
            yield tx
        self._committed(tx.info)

    @asynccontextmanager
    async def _raw(self) -> AsyncIterator[Tx]:
        """One of the pool's connections, spoken to through asyncpg itself."""
        async with self.engine.connect() as conn:
            driver: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
            try:
                yield Tx(driver, self.engine.dialect, self.tracer)
            except BaseException:
                if driver.is_closed():  # the server went away: not back into the pool
                    await conn.invalidate()
                raise

    def _committed(self, info: dict[Any, Any]) -> None:
        for hook in self.after_commit:
            hook(info)
        for callback in info.pop(_ON_COMMIT, ()):
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
