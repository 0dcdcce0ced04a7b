"""Orders and their lines. The saga that drives an order's status keeps its log here too."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Uuid,
)
from sqlmodel import Field, Relationship, SQLModel

from bookstore_shared.columns import enum_field, jsonb_field, timestamp_field
from bookstore_shared.consumer import inbox_table
from bookstore_shared.messages import Address
from bookstore_shared.outbox import outbox_table

SCHEMA = "sales"


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class CancelReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    PAYMENT_DECLINED = "payment_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    DELIVERY_UNAVAILABLE = "delivery_unavailable"
    CUSTOMER_CANCELLED = "customer_cancelled"
    DELIVERY_FAILED = "delivery_failed"
    EXPIRED = "expired"


class SagaState(StrEnum):
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"


class StockState(StrEnum):
    NONE = "none"
    REQUESTED = "requested"
    HELD = "held"
    REJECTED = "rejected"
    COMMITTING = "committing"
    COMMITTED = "committed"
    RELEASING = "releasing"
    RELEASED = "released"
    RETURNING = "returning"
    RETURNED = "returned"


class PaymentState(StrEnum):
    NONE = "none"
    REQUESTED = "requested"
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    REFUNDING = "refunding"
    REFUNDED = "refunded"


class DeliveryState(StrEnum):
    NONE = "none"
    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    REJECTED = "rejected"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    DISPATCHED = "dispatched"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    FAILED = "failed"


OUTBOX = outbox_table(SCHEMA)
INBOX = inbox_table(SCHEMA)


class OrderEvent(SQLModel, table=True):
    """Each change of an order's status, in the order it happened: what an account's live
    updates (`GET /orders/events`) send, and resume from (`Last-Event-ID` is `id`)."""

    __tablename__ = "order_events"
    __table_args__ = (
        Index("ix_order_events_customer", "customer_id", "id"),
        {"schema": SCHEMA},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    order_id: uuid.UUID
    customer_id: uuid.UUID
    status: OrderStatus = enum_field(OrderStatus, default=None)
    cancel_reason: CancelReason | None = enum_field(CancelReason, default=None, length=40)
    occurred_at: datetime = timestamp_field()


class OrderEventPublic(SQLModel):
    """One change of an order's status."""

    order_id: uuid.UUID
    status: OrderStatus
    cancel_reason: CancelReason | None
    occurred_at: datetime


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("total_cents >= 0", name="total_not_negative"),
        Index("ix_orders_customer_created", "customer_id", "created_at"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    customer_id: uuid.UUID
    status: OrderStatus = enum_field(OrderStatus, default=OrderStatus.PENDING)
    cancel_reason: CancelReason | None = enum_field(CancelReason, default=None, length=40)
    cancel_details: dict[str, Any] | None = jsonb_field(default=None)
    # Why a cancel was refused (the parcel had left), if one was.
    cancel_refusal: str | None = Field(default=None, max_length=200)
    total_cents: int | None = None
    shipping_address: dict[str, str | None] = jsonb_field()
    card_last4: str | None = Field(default=None, max_length=4)
    # The card provider's token for the card; the card number itself is never stored.
    payment_token: str | None = Field(default=None, max_length=200)
    saga_state: SagaState = enum_field(SagaState, default=SagaState.RUNNING)
    stock_state: StockState = enum_field(StockState, default=StockState.NONE)
    payment_state: PaymentState = enum_field(PaymentState, default=PaymentState.NONE)
    delivery_state: DeliveryState = enum_field(DeliveryState, default=DeliveryState.NONE)
    payment_id: uuid.UUID | None = None
    delivery_id: uuid.UUID | None = None
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    # Counted up by every change the saga writes: its write checks the version it read.
    version: int = 0

    lines: list["OrderLine"] = Relationship(back_populates="order")


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_cents >= 0", name="price_not_negative"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey(f"{SCHEMA}.orders.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    book_id: uuid.UUID
    quantity: int
    # Filled in from inventory when the stock is reserved: prices never come from the client.
    title: str | None = Field(default=None, max_length=300)
    unit_price_cents: int | None = None

    order: Order = Relationship(back_populates="lines")


class StepKind(StrEnum):
    ACTION = "action"
    COMPENSATION = "compensation"


class StepStatus(StrEnum):
    SENT = "sent"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


class SagaStep(SQLModel, table=True):
    """One command the saga sent, and what came back."""

    __tablename__ = "saga_steps"
    __table_args__ = (
        Index("ix_saga_steps_open_deadline", "deadline_at", postgresql_where="status = 'sent'"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey(f"{SCHEMA}.orders.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = Field(max_length=40)
    kind: StepKind = enum_field(StepKind, default=StepKind.ACTION)
    status: StepStatus = enum_field(StepStatus, default=StepStatus.SENT)
    command_type: str = Field(max_length=60)
    command: dict[str, Any] = jsonb_field()
    command_message_id: uuid.UUID
    reply_type: str | None = Field(default=None, max_length=60)
    reply_message_id: uuid.UUID | None = None
    detail: dict[str, Any] | None = jsonb_field(default=None)
    attempts: int = 1
    sent_at: datetime = timestamp_field()
    deadline_at: datetime = Field(sa_type=DateTime(timezone=True))
    answered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class PaymentStatus(StrEnum):
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    REFUNDED = "refunded"
    # Refunded before it was authorised (the command is late, or lost): never authorised now.
    VOIDED = "voided"


class Payment(SQLModel, table=True):
    """The payment side of an order, as the card provider answered it."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(unique=True)
    amount_cents: int
    status: PaymentStatus = enum_field(PaymentStatus, default=PaymentStatus.AUTHORIZED)
    provider_reference: str | None = Field(default=None, max_length=100)
    decline_reason: str | None = Field(default=None, max_length=40)
    refunded_cents: int = 0
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class IdempotencyKey(SQLModel, table=True):
    """A client's Idempotency-Key for POST /orders, scoped to that client."""

    __tablename__ = "idempotency_keys"
    __table_args__ = {"schema": SCHEMA}

    customer_id: uuid.UUID = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    order_id: uuid.UUID | None = None
    response_status: int | None = None
    response_body: dict[str, Any] | None = jsonb_field(default=None)
    created_at: datetime = timestamp_field()


class CatalogBook(SQLModel, table=True):
    """What sales keeps of each book for carts, from inventory's BookChanged events: a cart is
    read without asking inventory. The newest change wins (`changed_at`)."""

    __tablename__ = "catalog_books"
    __table_args__ = {"schema": SCHEMA}

    book_id: uuid.UUID = Field(primary_key=True)
    title: str = Field(max_length=300)
    price_cents: int
    deleted: bool = False
    changed_at: datetime = Field(sa_type=DateTime(timezone=True))


class Cart(SQLModel, table=True):
    """A signed-in account's cart; its row is locked while the cart changes."""

    __tablename__ = "carts"
    __table_args__ = {"schema": SCHEMA}

    customer_id: uuid.UUID = Field(primary_key=True)
    updated_at: datetime = timestamp_field()


class CartItem(SQLModel, table=True):
    __tablename__ = "cart_items"
    __table_args__ = (
        CheckConstraint("quantity BETWEEN 1 AND 100", name="quantity_in_range"),
        {"schema": SCHEMA},
    )

    customer_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid,
            ForeignKey(f"{SCHEMA}.carts.customer_id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    book_id: uuid.UUID = Field(primary_key=True)
    quantity: int
    added_at: datetime = timestamp_field()


class OrderLinePublic(SQLModel):
    book_id: uuid.UUID
    quantity: int
    title: str | None
    unit_price_cents: int | None


class OrderPublic(SQLModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    status: OrderStatus
    cancel_reason: CancelReason | None
    cancel_details: dict[str, Any] | None
    cancel_refusal: str | None
    total_cents: int | None
    items: list[OrderLinePublic]
    shipping_address: Address
    card_last4: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Any) -> "OrderPublic":
        """From an order row (ORM or the saga's own), its lines as items."""
        fields = {name: getattr(order, name) for name in cls.model_fields if name != "items"}
        items = [
            OrderLinePublic(
                book_id=line.book_id,
                quantity=line.quantity,
                title=line.title,
                unit_price_cents=line.unit_price_cents,
            )
            for line in order.lines
        ]
        return cls(**fields, items=items)


class SagaStepPublic(SQLModel):
    name: str
    kind: StepKind
    status: StepStatus
    command_type: str
    reply_type: str | None
    detail: dict[str, Any] | None
    attempts: int
    sent_at: datetime
    deadline_at: datetime
    answered_at: datetime | None


class SagaPublic(SQLModel):
    order_id: uuid.UUID
    status: OrderStatus
    saga_state: SagaState
    cancel_reason: CancelReason | None
    cancel_refusal: str | None
    steps: list[SagaStepPublic]
