"""The outbox poller: a row the broker refuses waits longer each time, holds up no other row,
and is parked after its last try; `unpark` puts parked rows back in line."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from bookstore_shared.db import Database
from bookstore_shared.messages import Envelope, Line, ReserveStock
from bookstore_shared.messaging import INVENTORY_COMMANDS, Broker
from bookstore_shared.outbox import MAX_ATTEMPTS, OutboxRelay, outbox_table, unpark

OUTBOX = outbox_table("outbox_test")


@pytest.fixture
async def relay(service_settings: dict[str, Any]) -> AsyncIterator[OutboxRelay]:
    db = Database(service_settings["database_url"], pool_size=2)
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS outbox_test"))
        await conn.run_sync(OUTBOX.create, checkfirst=True)
        await conn.execute(OUTBOX.delete())
    broker = Broker(service_settings["amqp_url"], namespace=service_settings["broker_namespace"])
    await broker.connect()
    channel = await broker.connection.channel()
    await broker.declare_queue(channel, INVENTORY_COMMANDS, ["ReserveStock"])
    yield OutboxRelay(db=db, broker=broker, table=OUTBOX, stale_after=0)
    await channel.close()
    await broker.close()
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA outbox_test CASCADE"))
    await db.dispose()


async def _add(relay: OutboxRelay, envelope: Envelope, *, attempts: int = 0) -> None:
    async with relay.db.engine.begin() as conn:
        await conn.execute(
            insert(OUTBOX).values(
                id=envelope.message_id,
                type=envelope.type,
                correlation_id=envelope.correlation_id,
                body=envelope.model_dump(mode="json"),
                attempts=attempts,
                created_at=text("now() - interval '1 minute'"),
            )
        )


def _reserve() -> Envelope:
    lines = [Line(book_id=uuid.uuid4(), quantity=1)]
    return Envelope.wrap(ReserveStock(order_id=uuid.uuid4(), lines=lines))


def _unroutable() -> Envelope:
    return _reserve().model_copy(update={"type": "NobodyTakesThis"})


async def _row(relay: OutboxRelay, envelope: Envelope) -> Any:
    async with relay.db.engine.connect() as conn:
        return (await conn.execute(select(OUTBOX).where(OUTBOX.c.id == envelope.message_id))).one()


async def test_refused_row_waits_and_holds_up_no_other(relay: OutboxRelay) -> None:
    refused, good = _unroutable(), _reserve()
    await _add(relay, refused)
    await _add(relay, good)
    assert await relay.publish_stale() == 1  # the good one, though it is behind
    waiting = await _row(relay, refused)
    assert (waiting.attempts, waiting.published_at, waiting.parked_at) == (1, None, None)
    assert waiting.next_attempt_at is not None
    assert (await _row(relay, good)).published_at is not None
    assert await relay.publish_stale() == 0  # not tried again before its pause is over
    assert (await _row(relay, refused)).attempts == 1


async def test_refused_row_is_parked_after_its_last_try_and_unparked_on_request(
    relay: OutboxRelay,
) -> None:
    refused = _unroutable()
    await _add(relay, refused, attempts=MAX_ATTEMPTS - 1)
    assert await relay.publish_stale() == 0
    parked = await _row(relay, refused)
    assert (parked.attempts, parked.parked_at is not None) == (MAX_ATTEMPTS, True)
    assert await unpark(relay.db, OUTBOX) == 1
    back = await _row(relay, refused)
    assert (back.attempts, back.parked_at, back.next_attempt_at) == (0, None, None)
