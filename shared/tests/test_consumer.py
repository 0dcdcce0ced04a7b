"""A consumer runs each message's handler once: the handler reads without a lock, and when what
it read changed before its write (another handler got there first), its write fails whole and
it runs again on a fresh read; a message delivered twice is applied once."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, Table, Uuid, bindparam, func, select, update

from bookstore_shared.consumer import Consumer, HandlerContext, inbox_table
from bookstore_shared.db import Database
from bookstore_shared.messages import CommitStock, Envelope
from bookstore_shared.messaging import INVENTORY_COMMANDS, Broker
from bookstore_shared.outbox import Outbox, outbox_table
from bookstore_testing.shop import eventually

SCHEMA = "consumer_test"
INBOX = inbox_table(SCHEMA)
OUTBOX = outbox_table(SCHEMA)
COUNTERS = Table(
    "counters",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("handled", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    schema=SCHEMA,
)
_READ = select(COUNTERS.c.handled, COUNTERS.c.version).where(COUNTERS.c.id == bindparam("counter"))
_CHANGE_MEANWHILE = (
    update(COUNTERS)
    .where(COUNTERS.c.id == bindparam("counter"))
    .values(version=COUNTERS.c.version + 1)
)
_COUNT = (  # the handler's guarded write: one more message handled, if nothing changed since
    update(COUNTERS)
    .where(COUNTERS.c.id == bindparam("counter"), COUNTERS.c.version == bindparam("read_version"))
    .values(handled=COUNTERS.c.handled + 1, version=COUNTERS.c.version + 1)
    .returning(COUNTERS.c.id)
)


@pytest.fixture
async def db(scratch_schema: Any) -> AsyncIterator[Database]:
    async with scratch_schema(SCHEMA, (INBOX, OUTBOX, COUNTERS)) as database:
        yield database


@pytest.fixture
async def broker(service_settings: dict[str, Any]) -> AsyncIterator[Broker]:
    own = Broker(
        service_settings["amqp_url"],
        namespace=f"{service_settings['broker_namespace']}-consumer-{uuid.uuid4().hex[:6]}",
    )
    await own.connect()
    yield own
    await own.delete_namespace()
    await own.close()


async def test_a_handler_whose_read_went_stale_runs_again_and_counts_once(
    db: Database, broker: Broker
) -> None:
    counter = uuid.uuid4()
    async with db.autocommit() as tx:
        await tx.value(COUNTERS.insert().values(id=counter, handled=0, version=0), {})
    runs: list[int] = []

    async def count(ctx: HandlerContext, message: CommitStock) -> None:
        found = await ctx.tx.row(_READ, {"counter": counter})
        assert found is not None
        runs.append(found["version"])
        if len(runs) == 1:  # another writer changes the row between this read and the write
            async with db.autocommit() as other:
                await other.value(_CHANGE_MEANWHILE, {"counter": counter})
        ctx.writes.guard(_COUNT, {"counter": counter, "read_version": found["version"]})

    consumer = Consumer(
        purpose=INVENTORY_COMMANDS,
        broker=broker,
        db=db,
        outbox=Outbox(OUTBOX),
        inbox=INBOX,
        handlers={CommitStock: count},
    )
    envelope = Envelope.wrap(CommitStock(order_id=uuid.uuid4()))
    await consumer.start()
    try:
        await broker.publish(envelope)
        await eventually(_handled(db, envelope), within=10, what="the message handled")
        skipped = _duplicates()
        await broker.publish(envelope)  # delivered again: skipped
        await eventually(_more_duplicates_than(skipped), within=10, what="the copy skipped")
    finally:
        await consumer.stop()

    async with db.autocommit() as tx:
        final = await tx.row(_READ, {"counter": counter})
    assert runs[:2] == [0, 1]  # the first run read version 0; the retry read the change
    assert final is not None
    assert (final["handled"], final["version"]) == (1, 2)
    assert await _inbox_rows(db, envelope) == 1


def _handled(db: Database, envelope: Envelope) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return await _inbox_rows(db, envelope) == 1

    return probe


async def _inbox_rows(db: Database, envelope: Envelope) -> int:
    async with db.autocommit() as tx:
        found = await tx.value(
            select(func.count()).where(INBOX.c.message_id == bindparam("message")),
            {"message": envelope.message_id},
        )
    return int(found)


def _more_duplicates_than(seen: float) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return _duplicates() > seen

    return probe


def _duplicates() -> float:
    """Copies the consumer skipped so far (this process's metric)."""
    labels = {"queue": INVENTORY_COMMANDS, "outcome": "duplicate"}
    return REGISTRY.get_sample_value("bookstore_messages_handled_total", labels) or 0.0
