"""Deliveries: one per order, with the address it goes to and where it has got to."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from bookstore_shared.columns import enum_field, jsonb_field, timestamp_field
from bookstore_shared.messages import Address

SCHEMA = "delivery"


class DeliveryStatus(StrEnum):
    SCHEDULED = "scheduled"
    DISPATCHED = "dispatched"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Delivery(SQLModel, table=True):
    __tablename__ = "deliveries"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(unique=True)
    customer_id: uuid.UUID = Field(index=True)
    status: DeliveryStatus = enum_field(DeliveryStatus, default=DeliveryStatus.SCHEDULED)
    address: dict[str, str | None] = jsonb_field()
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class DeliveryPublic(SQLModel):
    id: uuid.UUID
    order_id: uuid.UUID
    customer_id: uuid.UUID
    status: DeliveryStatus
    address: Address
    created_at: datetime
    updated_at: datetime
