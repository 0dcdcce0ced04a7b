"""The order saga's state machine: what each answer does to an order, and what it sends next.

    reserve stock ─▶ authorize payment ─▶ schedule delivery ─▶ commit stock ─▶ confirmed

An order tracks each resource the saga touches (stock, payment, delivery). When a step fails,
a step times out, or the customer cancels, the saga compensates what the order holds, delivery
first: only once delivery has confirmed that no parcel will leave are the stock given back and
the payment refunded. If the parcel has left already, delivery refuses, the cancel is refused
(the order says why) and nothing is undone. The order becomes `cancelled` once every
compensation has been answered; answers to commands still in flight are compensated when they
come. Every command sent and every answer is written to `saga_steps`. The messages are bound to
these functions in `consumers.py`; deadlines are watched in `deadlines.py`.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Table,
    Uuid,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.columns import utcnow
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
from bookstore_shared.writes import Writes, arrays, unnest
from sales.models import (
    CancelReason,
    DeliveryState,
    Order,
    OrderLine,
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


ORDERS: Table = Order.__table__  # type: ignore[assignment]
LINES: Table = OrderLine.__table__  # type: ignore[assignment]
STEPS: Table = SagaStep.__table__  # type: ignore[assignment]
# What a client sees of an order: a change to any of these wakes its waiters.
_VISIBLE = ("status", "saga_state", "cancel_reason", "cancel_refusal", "total_cents")


@dataclass
class SagaLine:
    id: uuid.UUID
    book_id: uuid.UUID
    quantity: int
    title: str | None = None
    unit_price_cents: int | None = None


@dataclass
class SagaOrder:
    """An order's row as the saga reads and changes it: plain fields, written back by
    `Saga.save` as one statement for what changed (no ORM unit of work on this path)."""

    id: uuid.UUID
    customer_id: uuid.UUID
    status: OrderStatus
    cancel_reason: CancelReason | None
    cancel_details: dict[str, Any] | None
    cancel_refusal: str | None
    total_cents: int | None
    shipping_address: dict[str, str | None]
    card_last4: str | None
    payment_token: str | None
    saga_state: SagaState
    stock_state: StockState
    payment_state: PaymentState
    delivery_state: DeliveryState
    payment_id: uuid.UUID | None
    delivery_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    lines: list[SagaLine] = field(default_factory=list)
    _stored: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def new(
        cls,
        *,
        customer_id: uuid.UUID,
        shipping_address: dict[str, str | None],
        card_last4: str,
        payment_token: str,
        lines: list[tuple[uuid.UUID, int]],
    ) -> "SagaOrder":
        now = utcnow()
        return cls(
            id=uuid.uuid4(),
            customer_id=customer_id,
            status=OrderStatus.PENDING,
            cancel_reason=None,
            cancel_details=None,
            cancel_refusal=None,
            total_cents=None,
            shipping_address=shipping_address,
            card_last4=card_last4,
            payment_token=payment_token,
            saga_state=SagaState.RUNNING,
            stock_state=StockState.NONE,
            payment_state=PaymentState.NONE,
            delivery_state=DeliveryState.NONE,
            payment_id=None,
            delivery_id=None,
            created_at=now,
            updated_at=now,
            lines=[SagaLine(uuid.uuid4(), book_id, quantity) for book_id, quantity in lines],
        )

    def columns(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in ORDERS.columns}

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in self.columns().items() if self._stored.get(k, _UNSET) != v}


_UNSET = object()


async def lock_order(
    session: AsyncSession, order_id: uuid.UUID, *, with_lines: bool = True
) -> SagaOrder | None:
    """The order, locked: answers about one order are applied one at a time."""
    return await read_order(session, order_id, lock=True, with_lines=with_lines)


async def read_order(
    session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False, with_lines: bool = True
) -> SagaOrder | None:
    query = select(ORDERS).where(ORDERS.c.id == order_id)
    row = (await session.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        return None
    stored = dict(row._mapping)
    order = SagaOrder(**stored, _stored=stored)
    if with_lines:
        lines = await session.execute(
            select(
                LINES.c.id,
                LINES.c.book_id,
                LINES.c.quantity,
                LINES.c.title,
                LINES.c.unit_price_cents,
            )
            .where(LINES.c.order_id == order_id)
            .order_by(LINES.c.book_id)
        )
        order.lines = [SagaLine(*line) for line in lines]
    return order


@dataclass
class Saga:
    """One order's saga within one transaction: what it sends and what it answers are written
    with the order's changes when it is saved, all in one statement."""

    session: AsyncSession
    outbox: Outbox
    step_timeout: timedelta
    causation_id: uuid.UUID | None = None
    reply: Message | None = None
    reply_message_id: uuid.UUID | None = None
    # Where a save's writes go: a consumer's, sent with its inbox row when the handler ends;
    # none: each save sends its own.
    writes: Writes | None = None
    # Authorises a payment here and now (`payments.authorize` bound to this transaction).
    payments: Callable[[AuthorizePayment], Awaitable[Message]] | None = None
    _commands: list[Message] = field(default_factory=list)
    _performed: list[dict[str, Any]] = field(default_factory=list)
    _answers: list[dict[str, Any]] = field(default_factory=list)
    _priced: bool = False

    async def send(self, order: SagaOrder, command: Message) -> None:
        self._commands.append(command)
        log.info("saga_command_sent", order_id=str(order.id), command=command.type_name())

    async def pay(self, order: SagaOrder, command: AuthorizePayment) -> Message:
        """The payment step, run in this transaction rather than sent: its step is recorded
        as sent, and answered by the `answer` that follows, in the same save."""
        assert self.payments is not None, "payments are authorised from the saga's consumer"
        name, kind = STEP_NAMES[AuthorizePayment]
        self._performed.append(
            {
                "id": uuid.uuid4(),
                "name": name,
                "kind": kind,
                "command_type": command.type_name(),
                "command": command.model_dump(mode="json"),
                "command_message_id": uuid.uuid4(),  # no message: the step's own id
                "sent_at": utcnow(),
                "status": StepStatus.SENT,
                "reply_type": None,
                "reply_message_id": None,
                "detail": None,
                "answered_at": None,
            }
        )
        return await self.payments(command)

    def priced(self) -> None:
        """The order's lines got their titles and prices: they are written on save."""
        self._priced = True

    async def answer(
        self,
        order: SagaOrder,
        name: str,
        status: StepStatus,
        detail: dict[str, Any] | None = None,
        *,
        reply: Message | None = None,
    ) -> None:
        """Record the answer to step `name` (written on save): `reply`, or else the message
        being handled. Only a step still waiting is answered: a duplicate or late answer keeps
        the first."""
        reply = reply or self.reply
        answer = {
            "status": status,
            "reply_type": reply.type_name() if reply else None,
            "reply_message_id": self.reply_message_id if reply is self.reply else None,
            "detail": detail,
            "answered_at": utcnow(),
        }
        for step in self._performed:  # run in this transaction: answered as it is written
            if step["name"] == name and step["status"] == StepStatus.SENT:
                step.update(answer)
                return
        self._answers.append({"step": name, **answer})

    async def save(self, order: SagaOrder) -> None:
        """Write what changed in one statement (one round trip), once per transaction: the
        order (inserted if new), its lines or their prices, the answers to its steps, the
        commands (outbox) with their steps, and a NOTIFY to wake its waiters if a client would
        see the change."""
        new = not order._stored
        changes = order.changes()
        if not (
            new or changes or self._commands or self._performed or self._priced or self._answers
        ):
            return
        order.updated_at = utcnow()
        writes = self.writes or Writes()
        columns = {f"order__{name}": value for name, value in order.columns().items()}
        if new:
            writes.add(_INSERT_ORDER, columns)
            writes.add(_INSERT_LINES, arrays("line", _LINE, [vars(line) for line in order.lines]))
        else:
            writes.add(_UPDATE_ORDER, columns)
        if self._priced:
            writes.add(_PRICE_LINES, arrays("price", _PRICE, [vars(line) for line in order.lines]))
        if self._answers:
            writes.add(_ANSWER_STEPS, arrays("answer", _ANSWER, self._answers))
        if self._commands or self._performed:
            self._write_steps(order, writes)
        if new or any(name in changes for name in _VISIBLE):
            writes.then(_NOTIFY, {"notify_payload": f"{order.id}:{order.saga_state.value}"})
        if self.writes is None:
            await writes.run(self.session)
        order._stored = order.columns()
        self._commands, self._answers, self._priced = [], [], False

    def _write_steps(self, order: SagaOrder, writes: Writes) -> None:
        """The commands into the outbox, and a step for each, and for each step performed."""
        envelopes, messages = self.outbox.stage(
            self.session, self._commands, causation_id=self.causation_id
        )
        steps = list(self._performed)
        for envelope, command in zip(envelopes, self._commands, strict=True):
            name, kind = STEP_NAMES[type(command)]
            steps.append(
                {
                    "id": uuid.uuid4(),
                    "name": name,
                    "kind": kind,
                    "command_type": envelope.type,
                    "command": envelope.payload,
                    "command_message_id": envelope.message_id,
                    "sent_at": envelope.occurred_at,
                    "status": StepStatus.SENT,
                    "reply_type": None,
                    "reply_message_id": None,
                    "detail": None,
                    "answered_at": None,
                }
            )
        if envelopes:
            writes.add(self.outbox.insert_staged, messages)
        writes.add(
            _INSERT_STEPS,
            arrays("step", _STEP, steps) | {"step_deadline": utcnow() + self.step_timeout},
        )
        self._performed = []


# --- The statements of a save, built once: `Writes` sends those a save needs as one --------

_LINE = {"id": Uuid(), "book_id": Uuid(), "quantity": Integer()}
_PRICE = {"id": Uuid(), "title": String(), "unit_price_cents": Integer()}
_ANSWER = {
    "step": String(),
    "status": String(),
    "reply_type": String(),
    "reply_message_id": Uuid(),
    "detail": JSONB(),
    "answered_at": DateTime(timezone=True),
}
_STEP = {
    "id": Uuid(),
    "name": String(),
    "kind": String(),
    "command_type": String(),
    "command": JSONB(),
    "command_message_id": Uuid(),
    "sent_at": DateTime(timezone=True),
    "status": String(),
    "reply_type": String(),
    "reply_message_id": Uuid(),
    "detail": JSONB(),
    "answered_at": DateTime(timezone=True),
}
# What a saga may change of an order (everything but who placed it, and when).
_MUTABLE = [c.name for c in ORDERS.columns if c.name not in ("id", "customer_id", "created_at")]


def _order(name: str) -> Any:
    return bindparam(f"order__{name}", type_=ORDERS.c[name].type)


_INSERT_ORDER = insert(ORDERS).values({c.name: _order(c.name) for c in ORDERS.columns})
_UPDATE_ORDER = (
    update(ORDERS)
    .where(ORDERS.c.id == _order("id"))
    .values({name: _order(name) for name in _MUTABLE})
)
_line = unnest("line", _LINE)
_INSERT_LINES = insert(LINES).from_select(
    ["id", "order_id", "book_id", "quantity"],
    select(_line.c.id, _order("id"), _line.c.book_id, _line.c.quantity),
)
_price = unnest("price", _PRICE)
_PRICE_LINES = (
    update(LINES)
    .where(LINES.c.id == _price.c.id)
    .values(title=_price.c.title, unit_price_cents=_price.c.unit_price_cents)
)
_answer = unnest("answer", _ANSWER)
_ANSWER_STEPS = (  # only a step still waiting is answered: a late answer keeps the first
    update(STEPS)
    .where(
        STEPS.c.order_id == _order("id"),
        STEPS.c.name == _answer.c.step,
        STEPS.c.status == StepStatus.SENT,
    )
    .values({name: _answer.c[name] for name in _ANSWER if name != "step"})
)
_step = unnest("step", _STEP)
_INSERT_STEPS = insert(STEPS).from_select(
    [*_STEP, "order_id", "attempts", "deadline_at"],
    select(
        *(_step.c[name] for name in _STEP),
        _order("id"),
        literal(1, Integer()),
        bindparam("step_deadline", type_=DateTime(timezone=True)),
    ),
)
_NOTIFY = select(func.pg_notify(ORDER_CHANNEL, bindparam("notify_payload", type_=String())))


async def start(saga: Saga, order: SagaOrder) -> None:
    order.stock_state = StockState.REQUESTED
    lines = [Line(book_id=line.book_id, quantity=line.quantity) for line in order.lines]
    await saga.send(order, ReserveStock(order_id=order.id, lines=lines))


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
