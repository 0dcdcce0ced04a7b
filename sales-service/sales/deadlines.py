"""Saga deadlines: a command nobody answered in time is sent again, and after its last try
treated as failed (assuming the worst of it, so compensation undoes it if it did happen).

Replicas sweep side by side: each overdue step is taken in a transaction of its own with its
order locked, and looked at again once locked, so a step another replica has just resent (or
that was answered meanwhile) is left alone, and one step that fails holds up no other.
"""

import uuid
from datetime import timedelta

import structlog
from sqlalchemy import Table, bindparam, select, update

from bookstore_shared import metrics
from bookstore_shared.columns import utcnow
from bookstore_shared.db import Database, on_commit
from bookstore_shared.messages import MESSAGE_TYPES
from bookstore_shared.outbox import Outbox
from sales.models import (
    CancelReason,
    DeliveryState,
    PaymentState,
    SagaStep,
    StepKind,
    StepStatus,
    StockState,
)
from sales.saga import fail
from sales.saga_store import Saga, lock_order

log = structlog.get_logger(__name__)
STEPS: Table = SagaStep.__table__  # type: ignore[assignment]
_OVERDUE = (
    select(STEPS.c.id, STEPS.c.order_id)
    .where(STEPS.c.status == StepStatus.SENT, STEPS.c.deadline_at < bindparam("now"))
    .order_by(STEPS.c.deadline_at)
    .limit(bindparam("limit"))
)
_STEP = select(STEPS).where(STEPS.c.id == bindparam("step")).with_for_update()
_RESENT = (
    update(STEPS)
    .where(STEPS.c.id == bindparam("step"))
    .values(
        command_message_id=bindparam("message"),
        attempts=STEPS.c.attempts + 1,
        deadline_at=bindparam("deadline"),
    )
)
_TIMED_OUT = (
    update(STEPS)
    .where(STEPS.c.id == bindparam("step"))
    .values(status=StepStatus.TIMED_OUT, answered_at=bindparam("now"))
)

# When an action never gets an answer, assume the worst of it, so compensation undoes it.
_ASSUME_DONE = {
    "reserve_stock": ("stock_state", StockState.HELD),
    "authorize_payment": ("payment_state", PaymentState.AUTHORIZED),
    "schedule_delivery": ("delivery_state", DeliveryState.SCHEDULED),
    "commit_stock": ("stock_state", StockState.COMMITTED),
}


async def handle_overdue_steps(
    db: Database,
    *,
    outbox: Outbox,
    step_timeout: timedelta,
    max_attempts: int,
    limit: int = 50,
) -> int:
    """Resend commands nobody answered in time; after `max_attempts`, compensate instead.
    Returns how many overdue steps this round acted on."""
    async with db.autocommit() as tx:
        overdue = await tx.rows(_OVERDUE, {"now": utcnow(), "limit": limit})
    acted = 0
    for step_id, order_id in overdue:
        try:
            acted += await _handle_overdue_step(
                db,
                step_id=step_id,
                order_id=order_id,
                outbox=outbox,
                step_timeout=step_timeout,
                max_attempts=max_attempts,
            )
        except Exception:
            log.exception("saga_deadline_failed", order_id=str(order_id), step_id=str(step_id))
    return acted


async def _handle_overdue_step(
    db: Database,
    *,
    step_id: uuid.UUID,
    order_id: uuid.UUID,
    outbox: Outbox,
    step_timeout: timedelta,
    max_attempts: int,
) -> int:
    async with db.transaction() as tx:
        order = await lock_order(tx, order_id)  # the order first, then its step
        step = await tx.row(_STEP, {"step": step_id})
        if order is None or step is None:
            return 0
        if step["status"] != StepStatus.SENT or step["deadline_at"] >= utcnow():
            return 0  # answered, or resent by another replica, since it was picked
        saga = Saga(tx, outbox, step_timeout)
        name, attempts = step["name"], step["attempts"]
        if step["kind"] == StepKind.COMPENSATION or attempts < max_attempts:
            command = MESSAGE_TYPES[step["command_type"]].model_validate(step["command"])
            envelope = await outbox.add(tx, command)
            deadline = utcnow() + step_timeout * (attempts + 1)
            resent = {"step": step_id, "message": envelope.message_id, "deadline": deadline}
            await tx.value(_RESENT, resent)
            on_commit(tx, metrics.STEP_RESENDS.labels(name).inc)
            log.warning(
                "saga_step_resent", order_id=str(order_id), step=name, attempts=attempts + 1
            )
            return 1
        await tx.value(_TIMED_OUT, {"step": step_id, "now": utcnow()})
        field, assumed = _ASSUME_DONE[name]
        setattr(order, field, assumed)
        log.warning("saga_step_timed_out", order_id=str(order_id), step=name)
        await fail(saga, order, CancelReason.EXPIRED, {"reason": f"{name} got no answer"})
        await saga.save(order)
        return 1
