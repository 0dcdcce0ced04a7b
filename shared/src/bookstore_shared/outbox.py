"""The outbox: messages are written in the same transaction as the change that causes them.

`Outbox.add` inserts the message into the app's `outbox` table inside the caller's unit of
work. After the commit, `OutboxRelay` publishes it at once (no polling interval on the hot
path) and marks it sent. A poller is the safety net: rows still unsent a few seconds later
(the process died between commit and publish, or the broker was away) are claimed with
`FOR UPDATE SKIP LOCKED`, so replicas share that work without sending a row twice.
"""

import asyncio
import uuid
from types import TracebackType

import structlog
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Uuid,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from bookstore_shared import faults
from bookstore_shared.background import cancel, every
from bookstore_shared.db import Database
from bookstore_shared.messages import Envelope, Message
from bookstore_shared.messaging import Broker
from bookstore_shared.tracing import child_of, current_traceparent

log = structlog.get_logger(__name__)
_PENDING = "outbox_pending"


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
        Index("ix_outbox_unpublished", "created_at", postgresql_where=text("published_at IS NULL")),
        schema=schema,
    )


class Outbox:
    def __init__(self, table: Table) -> None:
        self.table = table

    async def add(
        self, session: AsyncSession, message: Message, *, causation_id: uuid.UUID | None = None
    ) -> Envelope:
        envelope = Envelope.wrap(
            message,
            causation_id=causation_id,
            traceparent=child_of(current_traceparent.get()),
        )
        await session.execute(
            self.table.insert().values(
                id=envelope.message_id,
                type=envelope.type,
                correlation_id=envelope.correlation_id,
                body=envelope.model_dump(mode="json"),
            )
        )
        session.info.setdefault(_PENDING, []).append(envelope)
        return envelope


class OutboxRelay:
    def __init__(
        self,
        *,
        db: Database,
        broker: Broker,
        table: Table,
        poll_interval: float = 1.0,
        stale_after: float = 5.0,
        batch_size: int = 200,
    ) -> None:
        self.db = db
        self.broker = broker
        self.table = table
        self.stale_after = stale_after
        self.batch_size = batch_size
        self._pending: asyncio.Queue[Envelope] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None
        self._poller = every(poll_interval, self._poll_once, "outbox-poll")
        self._polls = 0
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
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._poller.__aexit__(exc_type, exc, tb)
        await cancel(self._publisher)

    async def _publish_all(self, envelopes: list[Envelope]) -> list[uuid.UUID]:
        results = await asyncio.gather(
            *(self.broker.publish(e) for e in envelopes), return_exceptions=True
        )
        sent = []
        for envelope, result in zip(envelopes, results, strict=True):
            if isinstance(result, BaseException):
                log.warning(
                    "outbox_publish_failed",
                    message_type=envelope.type,
                    message_id=str(envelope.message_id),
                    order_id=str(envelope.correlation_id),
                    error=repr(result),
                )
            else:
                sent.append(envelope.message_id)
        return sent

    async def _publish_committed(self) -> None:
        while True:
            batch = [await self._pending.get()]
            while not self._pending.empty() and len(batch) < self.batch_size:
                batch.append(self._pending.get_nowait())
            sent = await self._publish_all(batch)
            if not sent:
                continue
            try:
                async with self.db.engine.begin() as conn:
                    await conn.execute(
                        update(self.table)
                        .where(self.table.c.id.in_(sent))
                        .values(published_at=func.now(), attempts=self.table.c.attempts + 1)
                    )
            except Exception as exc:  # left unmarked, the poller sends again; inboxes dedupe
                log.warning("outbox_mark_failed", count=len(sent), error=repr(exc))

    async def publish_stale(self) -> int:
        """Send what was committed but not sent a while ago. Returns how many were sent."""
        table = self.table
        async with self.db.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(table.c.id, table.c.body)
                    .where(
                        table.c.published_at.is_(None),
                        table.c.created_at
                        < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, self.stale_after),
                    )
                    .order_by(table.c.created_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            sent = await self._publish_all([Envelope.model_validate(r.body) for r in rows])
            await conn.execute(
                update(table)
                .where(table.c.id.in_([r.id for r in rows]))
                .values(attempts=table.c.attempts + 1)
            )
            if sent:
                await conn.execute(
                    update(table).where(table.c.id.in_(sent)).values(published_at=func.now())
                )
        if sent:
            log.info("outbox_stale_published", count=len(sent))
        return len(sent)

    async def _poll_once(self) -> None:
        """The safety net's round: send what is stale; now and then drop old sent rows."""
        self._polls += 1
        while await self.publish_stale() == self.batch_size:
            pass
        if self._polls % 600 == 0:
            async with self.db.engine.begin() as conn:
                await conn.execute(
                    self.table.delete().where(
                        self.table.c.published_at < func.now() - text("interval '1 day'")
                    )
                )
