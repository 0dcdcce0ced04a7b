"""The saga's hold on one order within one transaction.

`SagaOrder` is an order's row as the saga reads and changes it (`read_order`, its lines with
it, in one statement; `lock_order` for a transaction that holds it); `Saga` gathers what a
step sends (commands, to the outbox), performs (the payment) and answers, and `Saga.save`
writes it all with the order's changes in one statement (`bookstore_shared.writes`), guarded
by the version the order had when it was read. Both run in a `Tx`: asyncpg itself, no ORM on
this path. What each answer does to an order is in `saga.py`.
"""

import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    DateTime,
    Enum,
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
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by

from bookstore_shared import metrics
from bookstore_shared.columns import utcnow
from bookstore_shared.db import Tx, on_commit
from bookstore_shared.messages import (
    AuthorizePayment,
    CancelDelivery,
    CommitStock,
    Message,
    RefundPayment,
    ReleaseStock,
    ReserveStock,
    ReturnStock,
    ScheduleDelivery,
)
from bookstore_shared.outbox import Outbox
from bookstore_shared.writes import Writes, arrays, unnest
from sales.models import (
    CancelReason,
    DeliveryState,
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Payment,
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

FINAL_STATUSES = (OrderStatus.CONFIRMED, OrderStatus.CANCELLED)
ORDERS: Table = Order.__table__  # type: ignore[assignment]
LINES: Table = OrderLine.__table__  # type: ignore[assignment]
STEPS: Table = SagaStep.__table__  # type: ignore[assignment]
EVENTS: Table = OrderEvent.__table__  # type: ignore[assignment]
PAYMENTS: Table = Payment.__table__  # type: ignore[assignment]
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
    version: int
    lines: list[SagaLine] = field(default_factory=list)
    # Its payment row (`read_order(with_payment=True)`; None: it has none, or it was not read).
    payment: dict[str, Any] | None = None
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
            version=0,
            lines=[SagaLine(uuid.uuid4(), book_id, quantity) for book_id, quantity in lines],
        )

    def columns(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in ORDERS.columns}

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in self.columns().items() if self._stored.get(k, _UNSET) != v}


_UNSET = object()


def _final(order: SagaOrder) -> bool:
    return order.saga_state == SagaState.COMPLETED


# The order's columns that hold an enum's values: read back as members of their enum.
_ENUMS = {c.name: c.type.enum_class for c in ORDERS.columns if isinstance(c.type, Enum)}
# The order and its lines in one statement: the lines as a JSON array, in book order.
_LINES_OF_ORDER = (
    select(
        func.json_agg(
            aggregate_order_by(
                func.json_build_array(
                    LINES.c.id,
                    LINES.c.book_id,
                    LINES.c.quantity,
                    LINES.c.title,
                    LINES.c.unit_price_cents,
                ),
                LINES.c.book_id,
            )
        )
    )
    .where(LINES.c.order_id == ORDERS.c.id)
    .scalar_subquery()
)
_ORDER = select(ORDERS, _LINES_OF_ORDER.label("lines")).where(ORDERS.c.id == bindparam("order"))
_LOCKED_ORDER = _ORDER.with_for_update(of=ORDERS)
# The order with its payment, if it has one, for the step that pays (`payment__<column>`).
_ORDER_AND_PAYMENT = _ORDER.add_columns(
    *(c.label(f"payment__{c.name}") for c in PAYMENTS.columns)
).outerjoin_from(ORDERS, PAYMENTS, PAYMENTS.c.order_id == ORDERS.c.id)


async def lock_order(tx: Tx, order_id: uuid.UUID) -> SagaOrder | None:
    """The order, locked: answers about one order are applied one at a time."""
    return _saga_order(await tx.row(_LOCKED_ORDER, {"order": order_id}))


async def read_order(
    tx: Tx, order_id: uuid.UUID, *, with_payment: bool = False
) -> SagaOrder | None:
    """The order as it stands (no lock), with its payment row (`SagaOrder.payment`) if asked."""
    query = _ORDER_AND_PAYMENT if with_payment else _ORDER
    return _saga_order(await tx.row(query, {"order": order_id}), with_payment=with_payment)


def _saga_order(row: Any, *, with_payment: bool = False) -> SagaOrder | None:
    if row is None:
        return None
    stored = {name: row[name] for name in _COLUMNS}
    for name, enum in _ENUMS.items():
        if stored[name] is not None:
            stored[name] = enum(stored[name])
    lines = [
        SagaLine(uuid.UUID(id_), uuid.UUID(book_id), quantity, title, price)
        for id_, book_id, quantity, title, price in row["lines"] or ()
    ]
    order = SagaOrder(**stored, lines=lines, _stored=dict(stored))
    if with_payment and row["payment__id"] is not None:
        order.payment = {c.name: row[f"payment__{c.name}"] for c in PAYMENTS.columns}
    return order


@dataclass
class Saga:
    """One order's saga within one transaction: what it sends and what it answers are written
    with the order's changes when it is saved, all in one statement."""

    tx: Tx
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
    # Told of an order that a save made final, once that save has committed.
    settled: Callable[[SagaOrder], None] | None = None
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
            writes.guard(_UPDATE_ORDER, columns)
        if self._priced:
            writes.add(_PRICE_LINES, arrays("price", _PRICE, [vars(line) for line in order.lines]))
        if self._answers:
            writes.add(_ANSWER_STEPS, arrays("answer", _ANSWER, self._answers))
        if self._commands or self._performed:
            self._write_steps(order, writes)
        if new or "status" in changes:
            writes.add(_INSERT_EVENT, {})  # the order's own parameters say it all
        self._count(order, changes)
        if self.settled is not None and "saga_state" in changes and _final(order):
            on_commit(self.tx, functools.partial(self.settled, order))
        if new or any(name in changes for name in _VISIBLE):
            payload = f"{order.id}:{order.saga_state.value}:{order.customer_id}"
            writes.then(_NOTIFY, {"notify_payload": payload})
        if self.writes is None:
            await writes.run(self.tx)
        if not new:
            order.version += 1
        order._stored = order.columns()
        self._commands, self._answers, self._priced = [], [], False

    def _count(self, order: SagaOrder, changes: dict[str, Any]) -> None:
        """The saga's metrics, counted once this transaction commits: a final status, and the
        compensations asked for."""
        if "status" in changes and order.status in FINAL_STATUSES:
            status, reason = order.status.value, order.cancel_reason
            seconds = (utcnow() - order.created_at).total_seconds()

            def finished() -> None:
                metrics.ORDERS_FINISHED.labels(status, reason.value if reason else "").inc()
                metrics.SAGA_DURATION.labels(status).observe(seconds)

            on_commit(self.tx, finished)
        for command in self._commands:
            name, kind = STEP_NAMES[type(command)]
            if kind == StepKind.COMPENSATION:
                on_commit(self.tx, metrics.COMPENSATIONS.labels(name).inc)

    def _write_steps(self, order: SagaOrder, writes: Writes) -> None:
        """The commands into the outbox, and a step for each, and for each step performed."""
        envelopes, messages = self.outbox.stage(
            self.tx, self._commands, causation_id=self.causation_id
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
_COLUMNS = [c.name for c in ORDERS.columns]
# What a saga may change of an order (everything but who placed it, and when; its version
# counts the changes).
_FIXED = ("id", "customer_id", "created_at", "version")
_MUTABLE = [c.name for c in ORDERS.columns if c.name not in _FIXED]


def _order(name: str) -> Any:
    return bindparam(f"order__{name}", type_=ORDERS.c[name].type)


_INSERT_ORDER = insert(ORDERS).values({c.name: _order(c.name) for c in ORDERS.columns})
# The guard of every save but the first: the order is as it was read (its version), or the
# save writes nothing and its handler runs again on a fresh read.
_UPDATE_ORDER = (
    update(ORDERS)
    .where(ORDERS.c.id == _order("id"), ORDERS.c.version == _order("version"))
    .values({name: _order(name) for name in _MUTABLE} | {"version": ORDERS.c.version + 1})
    .returning(ORDERS.c.id)
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
_INSERT_EVENT = insert(EVENTS).values(
    order_id=_order("id"),
    customer_id=_order("customer_id"),
    status=_order("status"),
    cancel_reason=_order("cancel_reason"),
    occurred_at=_order("updated_at"),
)
