"""The order saga's state machine: what each answer does to an order, and what it sends next.

    reserve stock ─▶ authorize payment ─▶ schedule delivery ─▶ commit stock ─▶ confirmed

The payment is authorised in the same transaction as the StockReserved answer (`Saga.pay`),
not through the broker: sales is the payment as well as the saga (see README, the order saga).

An order tracks each resource the saga touches (stock, payment, delivery). When a step fails,
a step times out, or the customer cancels, the saga compensates what the order holds, delivery
first: only once delivery has confirmed that no parcel will leave are the stock given back and
the payment refunded. If the parcel has left already, delivery refuses, the cancel is refused
(the order says why) and nothing is undone. The order becomes `cancelled` once every
compensation has been answered; answers to commands still in flight are compensated when they
come. Every command sent and every answer is written to `saga_steps` (`saga_store.py`: the
order as the saga holds it, and how a step's changes are written). The messages are bound to
these functions in `consumers.py`; deadlines are watched in `deadlines.py`.
"""

from typing import Any

import structlog

from bookstore_shared.messages import (
    Address,
    AuthorizePayment,
    CancelDelivery,
    CommitStock,
    DeliveryCancelled,
    DeliveryCancelRefused,
    DeliveryRejected,
    DeliveryScheduled,
    DeliveryStatusChanged,
    Line,
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
from sales.models import (
    CancelReason,
    DeliveryState,
    OrderStatus,
    PaymentState,
    SagaState,
    StepStatus,
    StockState,
)
from sales.saga_store import Saga, SagaOrder

log = structlog.get_logger(__name__)
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


# Delivery's answer is awaited before stock and payment are undone.
DELIVERY_UNSETTLED = frozenset({DeliveryState.REQUESTED, DeliveryState.CANCELLING})
# Where a parcel can be, in the order it gets there: it only ever moves forward.
DELIVERY_PROGRESS = (
    DeliveryState.NONE,
    DeliveryState.REQUESTED,
    DeliveryState.SCHEDULED,
    DeliveryState.DISPATCHED,
    DeliveryState.IN_TRANSIT,
    DeliveryState.DELIVERED,
)
LEFT = frozenset({DeliveryState.DISPATCHED, DeliveryState.IN_TRANSIT, DeliveryState.DELIVERED})


async def start(saga: Saga, order: SagaOrder) -> None:
    order.stock_state = StockState.REQUESTED
    lines = [Line(book_id=line.book_id, quantity=line.quantity) for line in order.lines]
    await saga.send(
        order, ReserveStock(order_id=order.id, lines=lines, customer_id=order.customer_id)
    )


async def fail(
    saga: Saga, order: SagaOrder, reason: CancelReason, details: dict[str, Any] | None = None
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


async def compensate(saga: Saga, order: SagaOrder) -> None:
    """Undo what the order holds, delivery first: stock and payment wait for its answer."""
    if order.delivery_state == DeliveryState.SCHEDULED:
        order.delivery_state = DeliveryState.CANCELLING
        await saga.send(
            order,
            CancelDelivery(
                order_id=order.id,
                customer_id=order.customer_id,
                address=Address.model_validate(order.shipping_address),
            ),
        )
    if order.delivery_state in DELIVERY_UNSETTLED:
        return
    if order.stock_state == StockState.HELD:
        order.stock_state = StockState.RELEASING
        await saga.send(order, ReleaseStock(order_id=order.id))
    elif order.stock_state == StockState.COMMITTED:
        order.stock_state = StockState.RETURNING
        await saga.send(order, ReturnStock(order_id=order.id))
    if order.payment_state == PaymentState.AUTHORIZED:
        order.payment_state = PaymentState.REFUNDING
        await saga.send(order, RefundPayment(order_id=order.id))
    finish_if_compensated(order)


def finish_if_compensated(order: SagaOrder) -> None:
    if order.saga_state != SagaState.COMPENSATING:
        return
    if {order.stock_state, order.payment_state, order.delivery_state} & IN_FLIGHT:
        return
    order.status = OrderStatus.CANCELLED
    order.saga_state = SagaState.COMPLETED
    log.info("order_cancelled", order_id=str(order.id), reason=str(order.cancel_reason))


def _going_forward(order: SagaOrder) -> bool:
    return order.saga_state == SagaState.RUNNING


def _follow_delivery(order: SagaOrder) -> None:
    """A confirmed order's status follows its parcel."""
    if order.status not in (OrderStatus.CONFIRMED, OrderStatus.SHIPPED):
        return
    if order.delivery_state == DeliveryState.DELIVERED:
        order.status = OrderStatus.DELIVERED
    elif order.delivery_state in LEFT:
        order.status = OrderStatus.SHIPPED


# --- Answers from inventory ---------------------------------------------------------------


async def on_stock_reserved(saga: Saga, order: SagaOrder, message: StockReserved) -> None:
    await saga.answer(order, "reserve_stock", StepStatus.SUCCEEDED)
    if order.stock_state != StockState.REQUESTED:
        return
    order.stock_state = StockState.HELD
    priced = {line.book_id: line for line in message.lines}
    for line in order.lines:
        line.title = priced[line.book_id].title
        line.unit_price_cents = priced[line.book_id].unit_price_cents
    saga.priced()
    order.total_cents = sum((line.unit_price_cents or 0) * line.quantity for line in order.lines)
    if not _going_forward(order):
        await compensate(saga, order)
        return
    assert order.payment_token is not None
    order.payment_state = PaymentState.REQUESTED
    outcome = await saga.pay(
        order,
        AuthorizePayment(
            order_id=order.id, amount_cents=order.total_cents, payment_token=order.payment_token
        ),
    )
    if isinstance(outcome, PaymentAuthorized):
        await on_payment_authorized(saga, order, outcome)
    else:
        assert isinstance(outcome, PaymentDeclined)
        await on_payment_declined(saga, order, outcome)


async def on_stock_rejected(saga: Saga, order: SagaOrder, message: StockRejected) -> None:
    short = [line.model_dump(mode="json") for line in message.short]
    await saga.answer(order, "reserve_stock", StepStatus.FAILED, {"short": short})
    if order.stock_state != StockState.REQUESTED:
        return
    order.stock_state = StockState.REJECTED
    await fail(saga, order, CancelReason.OUT_OF_STOCK, {"short": short})


async def on_stock_committed(saga: Saga, order: SagaOrder, message: StockCommitted) -> None:
    await saga.answer(order, "commit_stock", StepStatus.SUCCEEDED)
    if order.stock_state != StockState.COMMITTING:
        return
    order.stock_state = StockState.COMMITTED
    if not _going_forward(order):
        await compensate(saga, order)
        return
    order.status = OrderStatus.CONFIRMED
    order.saga_state = SagaState.COMPLETED
    _follow_delivery(order)  # the parcel may have left while the sale was being recorded
    log.info("order_confirmed", order_id=str(order.id))


async def on_stock_commit_rejected(
    saga: Saga, order: SagaOrder, message: StockCommitRejected
) -> None:
    await saga.answer(order, "commit_stock", StepStatus.FAILED, {"reason": message.reason})
    if order.stock_state != StockState.COMMITTING:
        return
    order.stock_state = StockState.RELEASED  # the reservation is gone already
    await fail(saga, order, CancelReason.EXPIRED, {"reason": message.reason})


async def on_reservation_expired(saga: Saga, order: SagaOrder, message: ReservationExpired) -> None:
    if order.stock_state in (StockState.REQUESTED, StockState.HELD, StockState.COMMITTING):
        order.stock_state = StockState.RELEASED
        await fail(saga, order, CancelReason.EXPIRED, {"reason": "the stock reservation expired"})
    elif order.stock_state == StockState.RELEASING:
        order.stock_state = StockState.RELEASED
        finish_if_compensated(order)


async def on_stock_released(saga: Saga, order: SagaOrder, message: StockReleased) -> None:
    await saga.answer(order, "release_stock", StepStatus.SUCCEEDED)
    if order.stock_state == StockState.RELEASING:
        order.stock_state = StockState.RELEASED
        finish_if_compensated(order)


async def on_stock_returned(saga: Saga, order: SagaOrder, message: StockReturned) -> None:
    await saga.answer(order, "return_stock", StepStatus.SUCCEEDED)
    if order.stock_state == StockState.RETURNING:
        order.stock_state = StockState.RETURNED
        finish_if_compensated(order)


# --- Answers from payment -----------------------------------------------------------------


async def on_payment_authorized(saga: Saga, order: SagaOrder, message: PaymentAuthorized) -> None:
    await saga.answer(
        order,
        "authorize_payment",
        StepStatus.SUCCEEDED,
        {"amount_cents": message.amount_cents},
        reply=message,
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


async def on_payment_declined(saga: Saga, order: SagaOrder, message: PaymentDeclined) -> None:
    await saga.answer(
        order, "authorize_payment", StepStatus.FAILED, {"reason": message.reason}, reply=message
    )
    if order.payment_state != PaymentState.REQUESTED:
        return
    order.payment_state = PaymentState.DECLINED
    await fail(saga, order, CancelReason(message.reason))


async def on_payment_refunded(saga: Saga, order: SagaOrder, message: PaymentRefunded) -> None:
    await saga.answer(
        order, "refund_payment", StepStatus.SUCCEEDED, {"refunded_cents": message.refunded_cents}
    )
    if order.payment_state == PaymentState.REFUNDING:
        order.payment_state = PaymentState.REFUNDED
        finish_if_compensated(order)


# --- Answers and events from delivery -----------------------------------------------------


async def on_delivery_scheduled(saga: Saga, order: SagaOrder, message: DeliveryScheduled) -> None:
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


async def on_delivery_rejected(saga: Saga, order: SagaOrder, message: DeliveryRejected) -> None:
    await saga.answer(order, "schedule_delivery", StepStatus.FAILED, {"reason": message.reason})
    if order.delivery_state != DeliveryState.REQUESTED:
        return
    order.delivery_state = DeliveryState.REJECTED
    await fail(saga, order, CancelReason.DELIVERY_UNAVAILABLE, {"reason": message.reason})


async def on_delivery_cancelled(saga: Saga, order: SagaOrder, message: DeliveryCancelled) -> None:
    await saga.answer(order, "cancel_delivery", StepStatus.SUCCEEDED)
    if order.delivery_state == DeliveryState.CANCELLING:
        order.delivery_state = DeliveryState.CANCELLED
        await compensate(saga, order)  # no parcel will leave: now stock and payment


async def on_delivery_cancel_refused(
    saga: Saga, order: SagaOrder, message: DeliveryCancelRefused
) -> None:
    await saga.answer(
        order,
        "cancel_delivery",
        StepStatus.FAILED,
        {"reason": "the parcel had left", "delivery_status": message.status},
    )
    if order.delivery_state == DeliveryState.CANCELLING:
        _cancel_refused(order, DeliveryState(message.status))


def _cancel_refused(order: SagaOrder, parcel: DeliveryState) -> None:
    """The parcel left before the cancel reached delivery: the order stands, nothing undone."""
    order.delivery_state = parcel
    order.cancel_refusal = (
        f"the parcel was {parcel.value.replace('_', ' ')} before the cancel reached delivery"
    )
    log.info("order_cancel_refused", order_id=str(order.id), reason=order.cancel_refusal)
    order.cancel_reason, order.cancel_details = None, None
    if order.stock_state == StockState.COMMITTING:
        order.saga_state = SagaState.RUNNING  # StockCommitted confirms it
        return
    if order.stock_state != StockState.COMMITTED:
        # Its reservation ran out while the parcel was on its way: the copy has left, but the
        # shelf count still has it. Staff must correct the stock by hand.
        log.error("order_shipped_without_its_stock", order_id=str(order.id))
        order.cancel_details = {"warning": "shipped after its stock reservation had expired"}
    order.saga_state = SagaState.COMPLETED
    order.status = OrderStatus.CONFIRMED
    _follow_delivery(order)


async def on_delivery_status_changed(
    saga: Saga, order: SagaOrder, message: DeliveryStatusChanged
) -> None:
    parcel = DeliveryState(message.status)
    if parcel == DeliveryState.FAILED:
        if order.delivery_state in (DeliveryState.CANCELLED, DeliveryState.FAILED):
            return
        order.delivery_state = DeliveryState.FAILED
        await fail(saga, order, CancelReason.DELIVERY_FAILED)
        return
    if order.delivery_state == DeliveryState.CANCELLING:
        _cancel_refused(order, parcel)  # it left before our cancel: delivery will refuse it
        return
    if order.delivery_state not in DELIVERY_PROGRESS or DELIVERY_PROGRESS.index(
        parcel
    ) <= DELIVERY_PROGRESS.index(order.delivery_state):
        return  # late, repeated, or about a delivery that is over
    order.delivery_state = parcel
    _follow_delivery(order)
