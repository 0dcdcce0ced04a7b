"""Consuming: one typed handler per message type, each run exactly once per message.

For every delivery: parse the envelope (a message that cannot be parsed is dead-lettered at
once: retrying cannot fix it); then run the handler, which reads what it needs, without a
transaction or a lock; its writes, the outbox rows of its replies and the message's row in the
app's `inbox` table go in one statement at the end, atomic on its own and guarded
(`bookstore_shared.writes`): two round trips a message. A duplicate finds its inbox row there
and the statement fails, writing nothing: the message is acknowledged and skipped. A guard
that no longer holds (the order changed since it was read, say) fails it the same way, and
the handler runs again at once on a fresh read. Acknowledged only once the write is
committed. A handler that fails otherwise is retried after a growing pause in the queue's
retry tiers (about a quarter of an hour in all), then it is parked in the queue's dead
letters, from where `replay-dead-letters` sends it back.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from fastapi import FastAPI
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError
from sqlalchemy import (
    Column,
    DateTime,
    PrimaryKeyConstraint,
    String,
    Table,
    Uuid,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import SQLModel

from bookstore_shared import faults, metrics
from bookstore_shared.db import Database, Tx
from bookstore_shared.messages import Envelope, Message
from bookstore_shared.messaging import Broker, retries_of
from bookstore_shared.outbox import Outbox, OutboxRelay
from bookstore_shared.retention import Retention, pruning
from bookstore_shared.settings import ServiceSettings
from bookstore_shared.telemetry import extract_context
from bookstore_shared.writes import Writes

log = structlog.get_logger(__name__)
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
IMMEDIATE_RETRIES = 8


def inbox_table(schema: str) -> Table:
    return Table(
        "inbox",
        SQLModel.metadata,
        Column("consumer", String(100), nullable=False),
        Column("message_id", Uuid, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "message_id"),
        schema=schema,
    )


@dataclass
class HandlerContext:
    """What a handler gets besides its message: the transaction (`tx`), a way to send
    replies, and `writes`, which go to Postgres with the replies' outbox rows in one statement
    when the handler returns (so a handler reads first, then adds its writes)."""

    tx: Tx
    envelope: Envelope
    outbox: Outbox
    writes: Writes = field(default_factory=Writes)
    _replies: list[Message] = field(default_factory=list)

    async def send(self, message: Message) -> None:
        """Sent once the transaction commits; written with the handler's `writes`."""
        self._replies.append(message)

    async def finish(self) -> None:
        if self._replies:
            _, rows = self.outbox.stage(
                self.tx, self._replies, causation_id=self.envelope.message_id
            )
            self.writes.add(self.outbox.insert_staged, rows)
            self._replies = []
        await self.writes.run(self.tx)


Handler = Callable[[HandlerContext, Any], Awaitable[None]]
Handlers = Mapping[type[Message], Handler]


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in RETRYABLE_SQLSTATES


class Consumer:
    def __init__(
        self,
        *,
        purpose: str,
        broker: Broker,
        db: Database,
        outbox: Outbox,
        inbox: Table,
        handlers: Handlers,
        concurrency: int = 8,
    ) -> None:
        self.purpose = purpose
        self.broker = broker
        self.db = db
        self.outbox = outbox
        self.inbox = inbox
        self.handlers = dict(handlers)
        # Handled at once: `concurrency`, each holding a connection of the pool; as many more
        # wait here, sent ahead by the broker, so a slot that frees takes the next message at
        # once instead of waiting a round trip to the broker for it.
        self._slots = asyncio.Semaphore(concurrency)
        self.prefetch = 2 * concurrency
        self._channel: AbstractChannel | None = None
        # The message's inbox row, with its handler's writes: a second one fails them all.
        self._claim = insert(inbox).values(consumer=purpose, message_id=bindparam("claimed"))
        self._handled = select(inbox.c.message_id).where(
            inbox.c.consumer == bindparam("consumer"), inbox.c.message_id == bindparam("message")
        )

    async def start(self) -> None:
        self._channel = await self.broker.connection.channel()
        await self._channel.set_qos(prefetch_count=self.prefetch)
        queue = await self.broker.declare_queue(
            self._channel, self.purpose, [t.type_name() for t in self.handlers]
        )
        await queue.consume(self.on_message)

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with self._slots:
            await self._on_message(message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        queue = self.purpose
        if message.redelivered:
            metrics.MESSAGES_REDELIVERED.labels(queue).inc()
        try:
            envelope = Envelope.model_validate_json(message.body)
            payload = envelope.message()
            handler = self.handlers[type(payload)]
        except (ValidationError, KeyError, ValueError) as exc:
            log.error(
                "message_dead_lettered",
                consumer=queue,
                message_id=message.message_id,
                message_type=message.type,
                reason=f"unreadable: {type(exc).__name__}",
            )
            metrics.MESSAGES_HANDLED.labels(queue, "failed").inc()
            metrics.MESSAGES_DEAD_LETTERED.labels(queue).inc()
            await message.reject(requeue=False)
            return

        bound = structlog.contextvars.bind_contextvars(
            order_id=str(envelope.correlation_id),
            message_type=envelope.type,
            message_id=str(envelope.message_id),
        )
        # The handler's span continues the trace of the change that wrote the message.
        destination = self.broker.name(queue)
        with self.broker.tracer.start_as_current_span(
            f"{destination} process",
            context=extract_context(message.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": destination,
                "messaging.message.id": str(envelope.message_id),
                "messaging.message.conversation_id": str(envelope.correlation_id),
                "bookstore.message_type": envelope.type,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await faults.before_handling(envelope.type)
                outcome = await self._handle(envelope, payload, handler)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                log.exception("message_failed", consumer=queue, retries=retries_of(message))
                metrics.MESSAGES_HANDLED.labels(queue, "failed").inc()
                await self._try_later(message)
                return
            finally:
                structlog.contextvars.reset_contextvars(**bound)
            metrics.MESSAGES_HANDLED.labels(queue, outcome).inc()
            await message.ack()

    async def _try_later(self, message: AbstractIncomingMessage) -> None:
        """Off to wait in a retry tier (or, tries exhausted, to the dead letters)."""
        try:
            if not await self.broker.retry_later(self.purpose, message):
                metrics.MESSAGES_DEAD_LETTERED.labels(self.purpose).inc()
                log.error(
                    "message_dead_lettered",
                    consumer=self.purpose,
                    reason="failed on every try; replay-dead-letters sends it back",
                )
        except Exception as exc:  # the broker is away too: let it come back by redelivery
            log.warning("message_retry_not_scheduled", error=repr(exc))
            await asyncio.sleep(1.0)
            await message.nack(requeue=True)
            return
        await message.ack()

    async def _handle(self, envelope: Envelope, payload: Message, handler: Handler) -> str:
        """The handler reads what it needs (no transaction: each read is its own); then its
        writes, its replies' outbox rows and the message's inbox row go in one statement,
        which writes all or nothing. If the inbox row was there (a duplicate, handled by
        another delivery meanwhile), nothing is written and the message is skipped; if a
        guard or a unique row says that what the handler read has changed, nothing is written
        and the handler runs again."""
        for attempt in range(1, IMMEDIATE_RETRIES + 1):
            try:
                async with self.db.autocommit() as tx:
                    context = HandlerContext(tx, envelope, self.outbox)
                    await handler(context, payload)
                    context.writes.add(self._claim, {"claimed": envelope.message_id})
                    await context.finish()
                return "processed"
            except asyncpg.IntegrityConstraintViolationError:
                if await self._handled_already(envelope.message_id):
                    log.info("message_duplicate_skipped", consumer=self.purpose)
                    return "duplicate"
                # A row the handler meant to write was written meanwhile (a reservation by a
                # late release, say): read again.
                if attempt == IMMEDIATE_RETRIES:
                    raise
            except asyncpg.PostgresError as exc:
                if not _retryable(exc) or attempt == IMMEDIATE_RETRIES:
                    raise
                log.info("message_retried", reason=type(exc).__name__, attempt=attempt)
            await asyncio.sleep(0.005 * attempt)
        raise AssertionError("the last attempt returns or raises")

    async def _handled_already(self, message_id: uuid.UUID) -> bool:
        async with self.db.autocommit() as tx:
            found = await tx.row(self._handled, {"consumer": self.purpose, "message": message_id})
        return found is not None


@contextlib.asynccontextmanager
async def run_messaging(
    app: FastAPI,
    *,
    outbox: Outbox,
    inbox: Table,
    queues: Mapping[str, Handlers],
    retention: Sequence[Retention] = (),
    light: Collection[str] = (),
) -> AsyncIterator[None]:
    """The outbox relay, one consumer per queue, and the pruning of their history (and of
    the app's own `retention` rules), for the lifetime of the app. `light` queues carry few
    messages: one in hand at a time, so the busy ones keep their share of the pool."""
    db: Database = app.state.db
    broker: Broker = app.state.broker
    settings: ServiceSettings = app.state.settings
    history = [
        Retention(
            table=inbox,
            age=inbox.c.received_at,
            keep=timedelta(days=settings.retention_inbox_days),
        ),
        Retention(
            table=outbox.table,
            age=outbox.table.c.published_at,
            keep=timedelta(days=settings.retention_outbox_days),
        ),
        *retention,
    ]
    relay = OutboxRelay(db=db, broker=broker, table=outbox.table)
    app.state.telemetry.refresh_before_scrape(relay.measure_backlog)
    # Messages in hand at once take at most three quarters of the pool, so they never queue
    # for a connection behind each other and requests always find one (a message holds its
    # connection for two round trips, a request for one or two).
    busy = [purpose for purpose in queues if purpose not in light]
    share = max(1, (db.capacity * 3 // 4 - (len(queues) - len(busy))) // max(1, len(busy)))
    consumers = [
        Consumer(
            purpose=purpose,
            broker=broker,
            db=db,
            outbox=outbox,
            inbox=inbox,
            handlers=handlers,
            concurrency=1 if purpose in light else share,
        )
        for purpose, handlers in queues.items()
    ]
    async with relay, pruning(db, history, every_seconds=settings.retention_sweep_seconds):
        try:
            for consumer in consumers:
                await consumer.start()
            yield
        finally:
            for consumer in consumers:
                await consumer.stop()
