"""Orders and their lines. The saga that drives an order's status keeps its log here too."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Uuid
from sqlmodel import Field, Relationship, SQLModel

from bookstore_shared.columns import enum_field, jsonb_field, timestamp_field
from bookstore_shared.messages import Address

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
    total_cents: int = 0
    shipping_address: dict[str, str | None] = jsonb_field()
    card_last4: str | None = Field(default=None, max_length=4)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()

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
    title: str = Field(max_length=300)
    unit_price_cents: int
    quantity: int

    order: Order = Relationship(back_populates="lines")


class OrderLinePublic(SQLModel):
    book_id: uuid.UUID
    title: str
    unit_price_cents: int
    quantity: int


class OrderPublic(SQLModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    status: OrderStatus
    cancel_reason: CancelReason | None
    total_cents: int
    items: list[OrderLinePublic]
    shipping_address: Address
    card_last4: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> "OrderPublic":
        return cls.model_validate(
            {**order.model_dump(), "items": [line.model_dump() for line in order.lines]}
        )
