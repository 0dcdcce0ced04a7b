"""Shapes that travel between apps. Defined once here so every app reads them alike.

Readers are tolerant: a message may carry fields this version does not know (a newer replica
sent it during a rolling deploy); they are ignored, and logged at debug level.
"""

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

log = structlog.get_logger(__name__)


class Address(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code")


class Message(BaseModel):
    """Anything that travels between apps. Commands are imperative (ReserveStock), replies and
    events past tense (StockReserved)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    def correlation_id(self) -> uuid.UUID:
        """What ties this message to others about the same thing."""
        raise NotImplementedError


# --- Saga messages -------------------------------------------------------------------------
# Every one is about an order: its id is the correlation id that ties a saga's messages together.


class OrderMessage(Message):
    order_id: uuid.UUID

    def correlation_id(self) -> uuid.UUID:
        return self.order_id


class Line(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    book_id: uuid.UUID
    quantity: int = Field(gt=0, le=1000)


class PricedLine(Line):
    title: str
    unit_price_cents: int = Field(ge=0)


class ShortLine(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    book_id: uuid.UUID
    requested: int
    available: int


# Commands to inventory
class ReserveStock(OrderMessage):
    lines: list[Line] = Field(min_length=1)
    # Who orders: inventory keeps it with the reservation, so a review by them of a book they
    # bought shows as a verified purchase (none from a sender older than this field).
    customer_id: uuid.UUID | None = None


class CommitStock(OrderMessage):
    """Turn the order's reservation into a sale."""


class ReleaseStock(OrderMessage):
    """Give back a reservation that will not become a sale."""


class ReturnStock(OrderMessage):
    """Put sold stock back on the shelf (a cancelled or failed delivery)."""


# Replies and events from inventory
class StockReserved(OrderMessage):
    lines: list[PricedLine]
    expires_at: datetime


class StockRejected(OrderMessage):
    short: list[ShortLine]


class StockCommitted(OrderMessage):
    pass


class StockCommitRejected(OrderMessage):
    reason: str


class StockReleased(OrderMessage):
    pass


class StockReturned(OrderMessage):
    pass


class ReservationExpired(OrderMessage):
    pass


# Commands to payment (sales' own consumer) and its replies
class AuthorizePayment(OrderMessage):
    amount_cents: int = Field(ge=0)
    payment_token: str


class RefundPayment(OrderMessage):
    pass


class PaymentAuthorized(OrderMessage):
    payment_id: uuid.UUID
    amount_cents: int


class PaymentDeclined(OrderMessage):
    # "voided": the order's payment was refunded (voided) before this authorisation came.
    reason: Literal["payment_declined", "insufficient_funds", "voided"]


class PaymentRefunded(OrderMessage):
    refunded_cents: int


# Commands to delivery and its replies and events
class ScheduleDelivery(OrderMessage):
    customer_id: uuid.UUID
    address: Address


class CancelDelivery(OrderMessage):
    """Cancel the order's delivery; if none was scheduled yet, none ever will be."""

    customer_id: uuid.UUID | None = None
    address: Address | None = None


class DeliveryScheduled(OrderMessage):
    delivery_id: uuid.UUID


class DeliveryRejected(OrderMessage):
    reason: str


class DeliveryCancelled(OrderMessage):
    pass


class DeliveryCancelRefused(OrderMessage):
    """The parcel has left: the delivery, and so the order, cannot be cancelled any more."""

    delivery_id: uuid.UUID
    status: Literal["dispatched", "in_transit", "delivered"]


class DeliveryStatusChanged(OrderMessage):
    delivery_id: uuid.UUID
    status: Literal["dispatched", "in_transit", "delivered", "failed"]


# --- Catalog events ------------------------------------------------------------------------


class BookChanged(Message):
    """A book was added, changed, withdrawn or restored: what sales keeps of it for carts."""

    book_id: uuid.UUID
    title: str
    price_cents: int = Field(ge=0)
    deleted: bool
    changed_at: datetime

    def correlation_id(self) -> uuid.UUID:
        return self.book_id


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.__name__: cls
    for cls in (
        ReserveStock,
        CommitStock,
        ReleaseStock,
        ReturnStock,
        StockReserved,
        StockRejected,
        StockCommitted,
        StockCommitRejected,
        StockReleased,
        StockReturned,
        ReservationExpired,
        AuthorizePayment,
        RefundPayment,
        PaymentAuthorized,
        PaymentDeclined,
        PaymentRefunded,
        ScheduleDelivery,
        CancelDelivery,
        DeliveryScheduled,
        DeliveryRejected,
        DeliveryCancelled,
        DeliveryCancelRefused,
        DeliveryStatusChanged,
        BookChanged,
    )
}


class Envelope(BaseModel):
    """What travels on the wire: the message plus what it takes to trace and dedupe it."""

    message_id: uuid.UUID
    type: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    occurred_at: datetime
    # The trace context of the change that wrote the message (W3C `traceparent`...).
    trace_context: dict[str, str] = Field(default_factory=dict)
    payload: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        message: Message,
        *,
        causation_id: uuid.UUID | None = None,
        trace_context: dict[str, str] | None = None,
    ) -> "Envelope":
        return cls(
            message_id=uuid.uuid4(),
            type=message.type_name(),
            correlation_id=message.correlation_id(),
            causation_id=causation_id,
            occurred_at=datetime.now(UTC),
            trace_context=trace_context or {},
            payload=message.model_dump(mode="json"),
        )

    def message(self) -> Message:
        """The typed message; KeyError for an unknown type, ValidationError for a bad body."""
        message_type = MESSAGE_TYPES[self.type]
        if unknown := self.payload.keys() - message_type.model_fields.keys():
            log.debug("message_fields_ignored", message_type=self.type, fields=sorted(unknown))
        return message_type.model_validate(self.payload)
