"""The order saga, orchestrated here and carried by RabbitMQ.

    reserve stock ─▶ authorize payment ─▶ schedule delivery ─▶ commit stock ─▶ confirmed

An order tracks each resource the saga touches (stock, payment, delivery). When a step fails,
the order times out, or the customer cancels, the saga compensates every resource it holds
(release or return stock, refund, cancel the delivery) and the order becomes `cancelled` only
once every compensation has been answered. Replies to commands still in flight are compensated
when they arrive. Every command sent and every answer is written to `saga_steps`.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bookstore_shared.columns import utcnow
from bookstore_shared.consumer import HandlerContext, Handlers
from bookstore_shared.messages import (
    MESSAGE_TYPES,
    Address,
    AuthorizePayment,
    CancelDelivery,
    CommitStock,
    DeliveryCancelled,
    DeliveryRejected,
    DeliveryScheduled,
    DeliveryStatusChanged,
    Line,
    Message,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentRefunded,
    RefundPayment,
    ReleaseStock,
    ReservationExpired,
    ReserveStock,
    ReturnStock,
    ScheduleDelivery,
    StockCommitRejected,
    StockCommitted,
    StockRejected,
    StockReleased,
    StockReserved,
    StockReturned,
)
from bookstore_shared.outbox import Outbox
from sales.models import (
    CancelReason,
    DeliveryState,
    Order,
    OrderStatus,
    PaymentState,
    SagaState,
    SagaStep,
    StepKind,
    StepStatus,
    StockState,
)

log = structlog.get_logger(__name__)
ORDER_CHANNEL = "sales_order_changed"

STEP_NAMES: dict[type[Message], tuple[str, StepKind]] = {
    ReserveStock: ("reserve_stock", StepKind.ACTION),
    AuthorizePayment: ("authorize_payment", StepKind.ACTION),
    ScheduleDelivery: ("schedule_delivery", StepKind.ACTION),
    CommitStock: ("commit_stock", StepKind.ACTION),
    ReleaseStock: ("release_stock", StepKind.COMPENSATION),
    ReturnStock: ("return_stock", StepKind.COMPENSATION),
    RefundPayment: ("refund_payment", StepKind.COMPENSATION),
    CancelDelivery: ("cancel_delivery", StepKind.COMPENSATION),
}
# A resource in one of these states has a command out and is waiting for its answer.
IN_FLIGHT = frozenset(
    {
        StockState.REQUESTED,
        StockState.COMMITTING,
        StockState.RELEASING,
        StockState.RETURNING,
        PaymentState.REQUESTED,
        PaymentState.REFUNDING,
        DeliveryState.REQUESTED,
        DeliveryState.CANCELLING,
    }
)


@dataclass
class Saga:
    """One order's saga within one transaction."""

    session: AsyncSession
    outbox: Outbox
    step_timeout: timedelta
    causation_id: uuid.UUID | None = None
    reply: Message | None = None
    reply_message_id: uuid.UUID | None = None

    async def send(self, order: Order, command: Message) -> None:
        envelope = await self.outbox.add(self.session, command, causation_id=self.causation_id)
        name, kind = STEP_NAMES[type(command)]
        self.session.add(
            SagaStep(
                order_id=order.id,
                name=name,
                kind=kind,
                command_type=envelope.type,
                command=envelope.payload,
                command_message_id=envelope.message_id,
                deadline_at=utcnow() + self.step_timeout,
            )
        )
        log.info("saga_command_sent", order_id=str(order.id), command=envelope.type)

    async def answer(
        self, order: Order, name: str, status: StepStatus, detail: dict[str, Any] | None = None
    ) -> None:
        # Only a step still waiting is answered: a duplicate or late answer keeps the first.
        await self.session.execute(
            update(SagaStep)
            .where(
                SagaStep.order_id == order.id,  # type: ignore[arg-type]
                SagaStep.name == name,  # type: ignore[arg-type]
                SagaStep.status == StepStatus.SENT,  # type: ignore[arg-type]
            )
            .values(
                status=status,
                reply_type=self.reply.type_name() if self.reply else None,
                reply_message_id=self.reply_message_id,
                detail=detail,
                answered_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )

    async def changed(self, order: Order) -> None:
        """Wake anyone waiting on this order (Prefer: wait, the SSE stream), in any replica."""
        order.updated_at = utcnow()
        await self.session.execute(
            text("SELECT pg_notify(:channel, :order_id)"),
            {"channel": ORDER_CHANNEL, "order_id": f"{order.id}:{order.saga_state.value}"},
        )


async def lock_order(
    session: AsyncSession, order_id: uuid.UUID, *, with_lines: bool = True
) -> Order | None:
    """The order, locked: answers about one order are applied one at a time."""
    query = select(Order).where(Order.id == order_id).with_for_update()  # type: ignore[arg-type]
    if with_lines:
        query = query.options(selectinload(Order.lines))  # type: ignore[arg-type]
    order: Order | None = await session.scalar(query)
    return order


async def start(saga: Saga, order: Order) -> None:
    order.stock_state = StockState.REQUESTED
    lines = [Line(book_id=line.book_id, quantity=line.quantity) for line in order.lines]
    await saga.send(order, ReserveStock(order_id=order.id, lines=lines))
    await saga.changed(order)


async def fail(
    saga: Saga, order: Order, reason: CancelReason, details: dict[str, Any] | None = None
) -> None:
    """Stop going forward: compensate everything held, then the order is cancelled."""
    if order.status == OrderStatus.CANCELLED:
        return
    if order.saga_state != SagaState.COMPENSATING:
        order.saga_state = SagaState.COMPENSATING
        order.cancel_reason = reason
        order.cancel_details = details
        log.info("saga_compensating", order_id=str(order.id), reason=reason.value)
    await compensate(saga, order)


async def compensate(saga: Saga, order: Order) -> None:
    if order.stock_state == StockState.HELD:
        order.stock_state = StockState.RELEASING
        await saga.send(order, ReleaseStock(order_id=order.id))
    elif order.stock_state == StockState.COMMITTED:
        order.stock_state = StockState.RETURNING
        await saga.send(order, ReturnStock(order_id=order.id))
    if order.payment_state == PaymentState.AUTHORIZED:
        order.payment_state = PaymentState.REFUNDING
        await saga.send(order, RefundPayment(order_id=order.id))
    if order.delivery_state == DeliveryState.SCHEDULED:
        order.delivery_state = DeliveryState.CANCELLING
        await saga.send(order, CancelDelivery(order_id=order.id))
    finish_if_compensated(order)


def finish_if_compensated(order: Order) -> None:
    if order.saga_state != SagaState.COMPENSATING:
        return
    if {order.stock_state, order.payment_state, order.delivery_state} & IN_FLIGHT:
        return
    order.status = OrderStatus.CANCELLED
    order.saga_state = SagaState.COMPLETED
    log.info("order_cancelled", order_id=str(order.id), reason=str(order.cancel_reason))


def _going_forward(order: Order) -> bool:
    return order.saga_state == SagaState.RUNNING


# --- Answers from inventory ---------------------------------------------------------------


async def on_stock_reserved(saga: Saga, order: Order, message: StockReserved) -> None:
    await saga.answer(order, "reserve_stock", StepStatus.SUCCEEDED)
    if order.stock_state != StockState.REQUESTED:
        return
    order.stock_state = StockState.HELD
    priced = {line.book_id: line for line in message.lines}
    for line in order.lines:
        line.title = priced[line.book_id].title
        line.unit_price_cents = priced[line.book_id].unit_price_cents
    order.total_cents = sum((line.unit_price_cents or 0) * line.quantity for line in order.lines)
    if not _going_forward(order):
        await compensate(saga, order)
        return
    assert order.payment_token is not None
    order.payment_state = PaymentState.REQUESTED
    await saga.send(
        order,
        AuthorizePayment(
            order_id=order.id, amount_cents=order.total_cents, payment_token=order.payment_token
        ),
    )


async def on_stock_rejected(saga: Saga, order: Order, message: StockRejected) -> None:
    short = [line.model_dump(mode="json") for line in message.short]
    await saga.answer(order, "reserve_stock", StepStatus.FAILED, {"short": short})
    if order.stock_state != StockState.REQUESTED:
        return
    order.stock_state = StockState.REJECTED
    await fail(saga, order, CancelReason.OUT_OF_STOCK, {"short": short})


async def on_stock_committed(saga: Saga, order: Order, message: StockCommitted) -> None:
    await saga.answer(order, "commit_stock", StepStatus.SUCCEEDED)
    if order.stock_state != StockState.COMMITTING:
        return
    order.stock_state = StockState.COMMITTED
    if not _going_forward(order):
        await compensate(saga, order)
        return
    order.status = OrderStatus.CONFIRMED
    order.saga_state = SagaState.COMPLETED
    log.info("order_confirmed", order_id=str(order.id))


async def on_stock_commit_rejected(saga: Saga, order: Order, message: StockCommitRejected) -> None:
    await saga.answer(order, "commit_stock", StepStatus.FAILED, {"reason": message.reason})
    if order.stock_state != StockState.COMMITTING:
        return
    order.stock_state = StockState.RELEASED  # the reservation is gone already
    await fail(saga, order, CancelReason.EXPIRED, {"reason": message.reason})


async def on_reservation_expired(saga: Saga, order: Order, message: ReservationExpired) -> None:
    if order.stock_state in (StockState.REQUESTED, StockState.HELD, StockState.COMMITTING):
        order.stock_state = StockState.RELEASED
        await fail(saga, order, CancelReason.EXPIRED, {"reason": "the stock reservation expired"})
    elif order.stock_state == StockState.RELEASING:
        order.stock_state = StockState.RELEASED
        finish_if_compensated(order)


async def on_stock_released(saga: Saga, order: Order, message: StockReleased) -> None:
    await saga.answer(order, "release_stock", StepStatus.SUCCEEDED)
    if order.stock_state == StockState.RELEASING:
        order.stock_state = StockState.RELEASED
        finish_if_compensated(order)


async def on_stock_returned(saga: Saga, order: Order, message: StockReturned) -> None:
    await saga.answer(order, "return_stock", StepStatus.SUCCEEDED)
    if order.stock_state == StockState.RETURNING:
        order.stock_state = StockState.RETURNED
        finish_if_compensated(order)


# --- Answers from payment -----------------------------------------------------------------


async def on_payment_authorized(saga: Saga, order: Order, message: PaymentAuthorized) -> None:
    await saga.answer(
        order, "authorize_payment", StepStatus.SUCCEEDED, {"amount_cents": message.amount_cents}
    )
    if order.payment_state != PaymentState.REQUESTED:
        return
    order.payment_state = PaymentState.AUTHORIZED
    order.payment_id = message.payment_id
    if not _going_forward(order):  # e.g. the reservation expired while payment was slow
        await compensate(saga, order)
        return
    order.delivery_state = DeliveryState.REQUESTED
    await saga.send(
        order,
        ScheduleDelivery(
            order_id=order.id,
            customer_id=order.customer_id,
            address=Address.model_validate(order.shipping_address),
        ),
    )


async def on_payment_declined(saga: Saga, order: Order, message: PaymentDeclined) -> None:
    await saga.answer(order, "authorize_payment", StepStatus.FAILED, {"reason": message.reason})
    if order.payment_state != PaymentState.REQUESTED:
        return
    order.payment_state = PaymentState.DECLINED
    await fail(saga, order, CancelReason(message.reason))


async def on_payment_refunded(saga: Saga, order: Order, message: PaymentRefunded) -> None:
    await saga.answer(
        order, "refund_payment", StepStatus.SUCCEEDED, {"refunded_cents": message.refunded_cents}
    )
    if order.payment_state == PaymentState.REFUNDING:
        order.payment_state = PaymentState.REFUNDED
        finish_if_compensated(order)


# --- Answers and events from delivery -----------------------------------------------------


async def on_delivery_scheduled(saga: Saga, order: Order, message: DeliveryScheduled) -> None:
    await saga.answer(
        order, "schedule_delivery", StepStatus.SUCCEEDED, {"delivery_id": str(message.delivery_id)}
    )
    if order.delivery_state != DeliveryState.REQUESTED:
        return
    order.delivery_state = DeliveryState.SCHEDULED
    order.delivery_id = message.delivery_id
    if not _going_forward(order):
        await compensate(saga, order)
        return
    order.stock_state = StockState.COMMITTING
    await saga.send(order, CommitStock(order_id=order.id))


async def on_delivery_rejected(saga: Saga, order: Order, message: DeliveryRejected) -> None:
    await saga.answer(order, "schedule_delivery", StepStatus.FAILED, {"reason": message.reason})
    if order.delivery_state != DeliveryState.REQUESTED:
        return
    order.delivery_state = DeliveryState.REJECTED
    await fail(saga, order, CancelReason.DELIVERY_UNAVAILABLE, {"reason": message.reason})


async def on_delivery_cancelled(saga: Saga, order: Order, message: DeliveryCancelled) -> None:
    await saga.answer(order, "cancel_delivery", StepStatus.SUCCEEDED)
    if order.delivery_state == DeliveryState.CANCELLING:
        order.delivery_state = DeliveryState.CANCELLED
        finish_if_compensated(order)


async def on_delivery_status_changed(
    saga: Saga, order: Order, message: DeliveryStatusChanged
) -> None:
    if message.status == "failed":
        order.delivery_state = DeliveryState.FAILED
        await fail(saga, order, CancelReason.DELIVERY_FAILED)
        return
    order.delivery_state = DeliveryState(message.status)
    if message.status == "dispatched" and order.status == OrderStatus.CONFIRMED:
        order.status = OrderStatus.SHIPPED
    elif message.status == "delivered" and order.status in (
        OrderStatus.CONFIRMED,
        OrderStatus.SHIPPED,
    ):
        order.status = OrderStatus.DELIVERED


REPLY_HANDLERS = {
    StockReserved: on_stock_reserved,
    StockRejected: on_stock_rejected,
    StockCommitted: on_stock_committed,
    StockCommitRejected: on_stock_commit_rejected,
    ReservationExpired: on_reservation_expired,
    StockReleased: on_stock_released,
    StockReturned: on_stock_returned,
    PaymentAuthorized: on_payment_authorized,
    PaymentDeclined: on_payment_declined,
    PaymentRefunded: on_payment_refunded,
    DeliveryScheduled: on_delivery_scheduled,
    DeliveryRejected: on_delivery_rejected,
    DeliveryCancelled: on_delivery_cancelled,
    DeliveryStatusChanged: on_delivery_status_changed,
}


def handlers(*, outbox: Outbox, step_timeout: timedelta) -> Handlers:
    def bind(on_reply: Any) -> Any:
        async def handle(ctx: HandlerContext, message: Message) -> None:
            order = await lock_order(
                ctx.session, message.order_id, with_lines=on_reply is on_stock_reserved
            )
            if order is None:
                log.warning("saga_reply_for_unknown_order", order_id=str(message.order_id))
                return
            saga = Saga(
                ctx.session,
                outbox,
                step_timeout,
                causation_id=ctx.envelope.message_id,
                reply=message,
                reply_message_id=ctx.envelope.message_id,
            )
            await on_reply(saga, order, message)
            await saga.changed(order)

        return handle

    return {message_type: bind(on_reply) for message_type, on_reply in REPLY_HANDLERS.items()}


# --- Deadlines ----------------------------------------------------------------------------

# When an action never gets an answer, assume the worst of it, so compensation undoes it.
_ASSUME_DONE = {
    "reserve_stock": ("stock_state", StockState.HELD),
    "authorize_payment": ("payment_state", PaymentState.AUTHORIZED),
    "schedule_delivery": ("delivery_state", DeliveryState.SCHEDULED),
    "commit_stock": ("stock_state", StockState.COMMITTED),
}


async def handle_overdue_steps(
    session: AsyncSession,
    *,
    outbox: Outbox,
    step_timeout: timedelta,
    max_attempts: int,
    limit: int = 50,
) -> int:
    """Resend commands nobody answered in time; after `max_attempts`, compensate instead."""
    overdue = (
        await session.execute(
            select(SagaStep.id, SagaStep.order_id)
            .where(SagaStep.status == StepStatus.SENT, SagaStep.deadline_at < utcnow())  # type: ignore[arg-type]
            .order_by(SagaStep.deadline_at)
            .limit(limit)
        )
    ).all()
    for step_id, order_id in overdue:
        order = await lock_order(session, order_id)  # the order first, as every handler does
        step = await session.get(SagaStep, step_id, with_for_update=True)
        if order is None or step is None or step.status != StepStatus.SENT:
            continue
        saga = Saga(session, outbox, step_timeout)
        if step.kind == StepKind.COMPENSATION or step.attempts < max_attempts:
            command = MESSAGE_TYPES[step.command_type].model_validate(step.command)
            envelope = await outbox.add(session, command)
            step.command_message_id = envelope.message_id
            step.attempts += 1
            step.deadline_at = utcnow() + step_timeout * step.attempts
            log.warning(
                "saga_step_resent", order_id=str(order_id), step=step.name, attempts=step.attempts
            )
            continue
        step.status, step.answered_at = StepStatus.TIMED_OUT, utcnow()
        field, assumed = _ASSUME_DONE[step.name]
        setattr(order, field, assumed)
        log.warning("saga_step_timed_out", order_id=str(order_id), step=step.name)
        await fail(saga, order, CancelReason.EXPIRED, {"reason": f"{step.name} got no answer"})
        await saga.changed(order)
    return len(overdue)
