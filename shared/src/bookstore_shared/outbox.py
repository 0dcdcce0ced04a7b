"""The outbox: messages are written in the same transaction as the change that causes them.

`Outbox.add` inserts the message into the app's `outbox` table inside the caller's unit of
work. After the commit, `OutboxRelay` publishes it at once (no polling interval on the hot
path) and marks it sent, a batch of rows at a time. A poller is the safety net: rows still
unsent a few seconds later (the process died between commit and publish, or the broker was
away) are claimed with `FOR UPDATE SKIP LOCKED`, so replicas share that work without sending a
row twice. A row the broker keeps refusing (say, no queue takes its type yet) is tried again
after a growing pause, so it never holds up the rows behind it, and after `MAX_ATTEMPTS` it
is parked with an error in the log; `python -m <app> replay-dead-letters` puts parked rows
back in line.
"""

import asyncio
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import structlog
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Uuid,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import SQLModel

from bookstore_shared import faults, metrics
from bookstore_shared.background import cancel, every
from bookstore_shared.db import Database, Tx, Work
from bookstore_shared.messages import Envelope, Message
from bookstore_shared.messaging import Broker
from bookstore_shared.telemetry import inject_context
from bookstore_shared.writes import Columns, arrays, unnest

log = structlog.get_logger(__name__)
_PENDING = "outbox_pending"
MAX_ATTEMPTS = 12  # 2 s, 4 s ... 10 min apart: about an hour of tries
MAX_PAUSE_SECONDS = 600


def outbox_table(schema: str) -> Table:
    return Table(
        "outbox",
        SQLModel.metadata,
        Column("id", Uuid, primary_key=True),
        Column("type", String(100), nullable=False),
        Column("correlation_id", Uuid, nullable=False),
        Column("body", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("next_attempt_at", DateTime(timezone=True)),
        Column("parked_at", DateTime(timezone=True)),
        Index(
            "ix_outbox_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL AND parked_at IS NULL"),
        ),
        schema=schema,
    )


# An outbox row as `Outbox.stage` hands it over: arrays of these, one element per message.
STAGED_COLUMNS: Columns = {
    "id": Uuid(),
    "type": String(),
    "correlation_id": Uuid(),
    "body": JSONB(),
}


class Outbox:
    def __init__(self, table: Table) -> None:
        self.table = table
        staged = unnest("message", STAGED_COLUMNS)
        # Inserts the rows `stage` returns; alone, or as one of a unit of work's `Writes`.
        self.insert_staged = insert(table).from_select(
            list(STAGED_COLUMNS), select(*(staged.c[name] for name in STAGED_COLUMNS))
        )

    async def add(
        self,
        work: AsyncSession | Tx,
        message: Message,
        *,
        causation_id: uuid.UUID | None = None,
    ) -> Envelope:
        (envelope,) = await self.add_all(work, [message], causation_id=causation_id)
        return envelope

    async def add_all(
        self,
        work: AsyncSession | Tx,
        messages: Sequence[Message],
        *,
        causation_id: uuid.UUID | None = None,
    ) -> list[Envelope]:
        """Messages into the outbox in one statement, inside the caller's transaction (an ORM
        session's or a `Tx`)."""
        envelopes, params = self.stage(work, messages, causation_id=causation_id)
        if not envelopes:
            pass
        elif isinstance(work, Tx):
            await work.value(self.insert_staged, params)
        else:
            await work.execute(self.insert_staged, params)
        return envelopes

    def stage(
        self,
        work: Work,
        messages: Sequence[Message],
        *,
        causation_id: uuid.UUID | None = None,
    ) -> tuple[list[Envelope], dict[str, Any]]:
        """The envelopes, and the parameters of `insert_staged` for them, which the caller
        runs in this same transaction (alone or with its other writes: one round trip). The
        relay publishes them once the transaction commits."""
        context = inject_context({})
        envelopes = [
            Envelope.wrap(message, causation_id=causation_id, trace_context=context)
            for message in messages
        ]
        rows = [
            {
                "id": envelope.message_id,
                "type": envelope.type,
                "correlation_id": envelope.correlation_id,
                "body": envelope.model_dump(mode="json"),
            }
            for envelope in envelopes
        ]
        if envelopes:
            work.info.setdefault(_PENDING, []).extend(envelopes)
        return envelopes, arrays("message", STAGED_COLUMNS, rows)


class OutboxRelay:
    def __init__(
        self,
        *,
        db: Database,
        broker: Broker,
        table: Table,
        poll_interval: float = 1.0,
        mark_interval: float = 0.2,
        stale_after: float = 5.0,
        batch_size: int = 200,
        in_flight: int = 512,
    ) -> None:
        self.db = db
        self.broker = broker
        self.table = table
        self.stale_after = stale_after
        self.batch_size = batch_size
        self._mark = (
            update(table)
            .where(table.c.id == func.any(bindparam("sent", type_=ARRAY(Uuid()))))
            .values(published_at=func.now(), attempts=table.c.attempts + 1)
        )
        self._pending: asyncio.Queue[Envelope] = asyncio.Queue()
        self._sent: list[uuid.UUID] = []
        self._publisher: asyncio.Task[None] | None = None
        self._window = asyncio.Semaphore(in_flight)
        self._publishing: set[asyncio.Task[None]] = set()
        self._poller = every(poll_interval, self._poll_once, "outbox-poll")
        self._marker = every(mark_interval, self._mark_sent, "outbox-mark")
        db.after_commit.append(self._after_commit)

    def _after_commit(self, info: dict[object, object]) -> None:
        envelopes = info.pop(_PENDING, None)
        if not isinstance(envelopes, list) or not envelopes:
            return
        faults.crash_after_commit({e.type for e in envelopes})
        for envelope in envelopes:
            self._pending.put_nowait(envelope)

    async def __aenter__(self) -> "OutboxRelay":
        self._publisher = asyncio.create_task(self._publish_committed(), name="outbox-publish")
        await self._poller.__aenter__()
        await self._marker.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._poller.__aexit__(exc_type, exc, tb)
        await cancel(self._publisher, *self._publishing)
        await self._marker.__aexit__(exc_type, exc, tb)
        await self._mark_sent()

    async def _publish(self, envelope: Envelope) -> bool:
        """Publish one message and wait for the broker's confirm; False (logged) if it failed:
        the row stays unsent, and the poller sends it again."""
        try:
            await self.broker.publish(envelope)
        except Exception as exc:
            log.warning(
                "outbox_publish_failed",
                message_type=envelope.type,
                message_id=str(envelope.message_id),
                order_id=str(envelope.correlation_id),
                error=repr(exc),
            )
            return False
        return True

    async def _publish_all(self, envelopes: list[Envelope]) -> list[uuid.UUID]:
        published = await asyncio.gather(*(self._publish(e) for e in envelopes))
        return [e.message_id for e, ok in zip(envelopes, published, strict=True) if ok]

    async def _publish_committed(self) -> None:
        """Publish each committed message as soon as it comes, without waiting for the confirms
        of those before it (a message committed while others were out waited a confirm's time
        on every hop); at most `in_flight` unconfirmed at once."""
        while True:
            envelope = await self._pending.get()
            await self._window.acquire()
            task = asyncio.create_task(self._publish_committed_one(envelope))
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _publish_committed_one(self, envelope: Envelope) -> None:
        try:
            if await self._publish(envelope):
                # Marked by the next round of `_mark_sent`.
                self._sent.append(envelope.message_id)
        finally:
            self._window.release()

    async def _mark_sent(self) -> None:
        """Mark what was published, many rows in one statement: one transaction a round, not
        one a message. A row published but not marked yet is not stale for `stale_after`
        seconds, far longer than a round; left unmarked (a crash), it is sent again, and the
        receivers' inboxes drop the copy."""
        sent, self._sent = self._sent, []
        if not sent:
            return
        try:
            async with self.db.autocommit() as tx:  # one statement: no BEGIN, no COMMIT
                await tx.value(self._mark, {"sent": sent})
        except Exception as exc:
            log.warning("outbox_mark_failed", count=len(sent), error=repr(exc))
            self._sent.extend(sent)

    async def publish_stale(self) -> int:
        """Send what was committed but not sent a while ago. Returns how many were sent."""
        table = self.table
        async with self.db.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(table.c.id, table.c.body)
                    .where(
                        table.c.published_at.is_(None),
                        table.c.parked_at.is_(None),
                        table.c.created_at
                        < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, self.stale_after),
                        or_(
                            table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= func.now()
                        ),
                    )
                    .order_by(table.c.created_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            sent = await self._publish_all([Envelope.model_validate(r.body) for r in rows])
            if sent:
                await conn.execute(
                    update(table)
                    .where(table.c.id.in_(sent))
                    .values(published_at=func.now(), attempts=table.c.attempts + 1)
                )
            if failed := [r.id for r in rows if r.id not in set(sent)]:
                await self._try_later(conn, failed)
        if sent:
            log.info("outbox_stale_published", count=len(sent))
        return len(sent)

    async def _try_later(self, conn: AsyncConnection, ids: list[uuid.UUID]) -> None:
        """Rows the broker refused: next try after a growing pause, or parked at the last."""
        table = self.table
        pause = func.least(func.power(2, table.c.attempts + 1), MAX_PAUSE_SECONDS)
        parked = (
            await conn.execute(
                update(table)
                .where(table.c.id.in_(ids))
                .values(
                    attempts=table.c.attempts + 1,
                    next_attempt_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, pause),
                    parked_at=case((table.c.attempts + 1 >= MAX_ATTEMPTS, func.now())),
                )
                .returning(table.c.id, table.c.type, table.c.parked_at)
            )
        ).all()
        for row in parked:
            if row.parked_at is not None:
                log.error(
                    "outbox_row_parked",
                    message_id=str(row.id),
                    message_type=row.type,
                    attempts=MAX_ATTEMPTS,
                    hint="replay-dead-letters puts it back in line",
                )

    async def measure_backlog(self) -> None:
        """The outbox gauges: rows waiting to be published, the oldest one's age, parked rows."""
        table = self.table
        waiting = table.c.parked_at.is_(None)
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count().filter(waiting),
                        func.extract(
                            "epoch", func.now() - func.min(table.c.created_at).filter(waiting)
                        ),
                        func.count().filter(table.c.parked_at.is_not(None)),
                    ).where(table.c.published_at.is_(None))
                )
            ).one()
        metrics.OUTBOX_BACKLOG.set(row[0])
        metrics.OUTBOX_OLDEST_AGE.set(float(row[1] or 0.0))
        metrics.OUTBOX_PARKED.set(row[2])

    async def _poll_once(self) -> None:
        """The safety net's round: send what is stale (sent rows are pruned by retention)."""
        while await self.publish_stale() == self.batch_size:
            pass


async def unpark(db: Database, table: Table) -> int:
    """Put an outbox's parked rows back in line (they are tried again at once); how many."""
    async with db.engine.begin() as conn:
        result = await conn.execute(
            update(table)
            .where(table.c.parked_at.is_not(None))
            .values(parked_at=None, next_attempt_at=None, attempts=0)
        )
    unparked: int = result.rowcount
    return unparked
