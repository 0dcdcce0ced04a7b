"""The outbox relay: every committed row is published once and marked once, however its
publishing and marking interleave; the poller's row the broker refuses waits longer each time,
holds up no other row, and is parked after its last try; `unpark` puts parked rows back in
line."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text

from bookstore_shared.db import Database
from bookstore_shared.messages import Envelope, Line, ReserveStock
from bookstore_shared.messaging import INVENTORY_COMMANDS, Broker
from bookstore_shared.outbox import MAX_ATTEMPTS, Outbox, OutboxRelay, outbox_table, unpark
from bookstore_testing.shop import eventually

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


async def test_every_committed_row_is_published_and_marked_once(relay: OutboxRelay) -> None:
    """Marking runs as often as it can while messages are published: a row published while a
    mark round is under way is marked by the next round (a lost mark would have the poller send
    it again)."""
    db = Database(relay.db.url, pool_size=2)  # its commits feed this relay alone
    eager = OutboxRelay(
        db=db,
        broker=relay.broker,
        table=OUTBOX,
        mark_interval=0.0005,
        poll_interval=3600,  # no safety net in this test: the fast path alone must do it
        stale_after=3600,
    )
    outbox, sent = Outbox(OUTBOX), []
    async with eager:
        for _ in range(40):
            async with db.unit_of_work() as session:
                envelopes = await outbox.add_all(session, [_reserve().message() for _ in range(5)])
            sent += [e.message_id for e in envelopes]
            await asyncio.sleep(0)  # let the publisher and the marker interleave with us
        with contextlib.suppress(AssertionError):  # those left unmarked fail below
            await eventually(lambda: _all_marked(relay), within=10, what="every row marked")
    await db.dispose()
    async with relay.db.engine.connect() as conn:
        rows = (await conn.execute(select(OUTBOX.c.published_at, OUTBOX.c.attempts))).all()
    assert len(rows) == len(sent) == 200
    assert [r for r in rows if r.published_at is None or r.attempts != 1] == []


async def _all_marked(relay: OutboxRelay) -> bool:
    async with relay.db.engine.connect() as conn:
        query = select(func.count()).where(OUTBOX.c.published_at.is_(None))
        return (await conn.execute(query)).scalar_one() == 0


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
