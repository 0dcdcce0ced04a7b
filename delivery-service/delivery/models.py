"""Deliveries: one per order, with the address it goes to and where it has got to."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict
from sqlalchemy import Column, ForeignKey, Uuid
from sqlmodel import Field, SQLModel

from bookstore_shared.columns import enum_field, jsonb_field, timestamp_field
from bookstore_shared.consumer import inbox_table
from bookstore_shared.messages import Address
from bookstore_shared.outbox import outbox_table

SCHEMA = "delivery"


class DeliveryStatus(StrEnum):
    SCHEDULED = "scheduled"
    DISPATCHED = "dispatched"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


OUTBOX = outbox_table(SCHEMA)
INBOX = inbox_table(SCHEMA)

# Where a delivery may go next; `failed` is open from any state before `delivered`.
NEXT_STATUS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.SCHEDULED: frozenset({DeliveryStatus.DISPATCHED, DeliveryStatus.FAILED}),
    DeliveryStatus.DISPATCHED: frozenset({DeliveryStatus.IN_TRANSIT, DeliveryStatus.FAILED}),
    DeliveryStatus.IN_TRANSIT: frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED}),
}


class Delivery(SQLModel, table=True):
    __tablename__ = "deliveries"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(unique=True)
    # Both unknown only for a delivery cancelled before it was scheduled, by an order whose
    # cancel did not say them: it stays as a record that nothing may be scheduled for it.
    customer_id: uuid.UUID | None = Field(default=None, index=True)
    status: DeliveryStatus = enum_field(DeliveryStatus, default=DeliveryStatus.SCHEDULED)
    address: dict[str, str | None] | None = jsonb_field(default=None)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class TrackingEvent(SQLModel, table=True):
    """One step of a delivery's journey, as its tracking shows it."""

    __tablename__ = "tracking_events"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    delivery_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid,
            ForeignKey(f"{SCHEMA}.deliveries.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    status: DeliveryStatus = enum_field(DeliveryStatus, default=DeliveryStatus.SCHEDULED)
    note: str | None = Field(default=None, max_length=500)
    occurred_at: datetime = timestamp_field()


class TrackingEventPublic(SQLModel):
    status: DeliveryStatus
    note: str | None
    occurred_at: datetime


class StatusChange(SQLModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["dispatched", "in_transit", "delivered", "failed"]
    note: str | None = Field(default=None, max_length=500)


class DeliveryPublic(SQLModel):
    id: uuid.UUID
    order_id: uuid.UUID
    customer_id: uuid.UUID | None
    status: DeliveryStatus
    address: Address | None
    tracking: list[TrackingEventPublic]
    created_at: datetime
    updated_at: datetime
