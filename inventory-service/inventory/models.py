"""Books: the catalog and the stock counts (available, reserved, sold) in one row; the stock
ledger of staff adjustments; reservations."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, WithJsonSchema, field_validator
from sqlalchemy import CheckConstraint, Column, Computed, DateTime, ForeignKey, Index, Uuid
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlmodel import Field, SQLModel
from stdnum import isbn as stdnum_isbn
from stdnum.exceptions import ValidationError as IsbnError

from bookstore_shared.columns import enum_field, timestamp_field
from bookstore_shared.consumer import inbox_table
from bookstore_shared.outbox import outbox_table
from bookstore_shared.pagination import Page

SCHEMA = "inventory"

SEARCH_EXPRESSION = (
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(author, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(category, '')), 'C') || "
    "setweight(to_tsvector('english', coalesce(description, '')), 'D')"
)


def normalize_isbn(value: str) -> str:
    """Any valid ISBN-10 or ISBN-13 (hyphens allowed) as its 13-digit form."""
    try:
        return str(stdnum_isbn.to_isbn13(stdnum_isbn.validate(value)))
    except IsbnError as exc:
        raise ValueError(f"not a valid ISBN-10 or ISBN-13: {exc}") from exc


# The shape of an ISBN-10 or ISBN-13; its check digit must also be right (format "isbn").
ISBN_PATTERN = r"^(?:[0-9][- ]?){9}(?:(?:[0-9][- ]?){3})?[0-9Xx]$"
Isbn = Annotated[
    str,
    AfterValidator(normalize_isbn),
    WithJsonSchema(
        {
            "type": "string",
            "format": "isbn",
            "pattern": ISBN_PATTERN,
            "description": "ISBN-10 or ISBN-13, hyphens allowed, with a valid check digit",
        }
    ),
]


OUTBOX = outbox_table(SCHEMA)
INBOX = inbox_table(SCHEMA)


class BookBase(SQLModel):
    title: str = Field(min_length=1, max_length=300)
    author: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=80)
    description: str | None = Field(default=None, max_length=5000)
    price_cents: int = Field(ge=0, le=10_000_000)
    published_year: int | None = Field(default=None, ge=1000, le=2100)


class BookCreate(BookBase):
    model_config = ConfigDict(extra="forbid")

    isbn: Isbn = Field(schema_extra={"examples": ["9780141439518"]})
    stock: int = Field(default=0, ge=0, le=1_000_000, description="Copies on hand")


class BookUpdate(SQLModel):
    """The fields to change; those left out stay as they are. Only the description and the year
    may be cleared with null: a book always has a title, an author, a category and a price."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default=None, min_length=1, max_length=300)
    author: str = Field(default=None, min_length=1, max_length=200)
    category: str = Field(default=None, min_length=1, max_length=80)
    description: str | None = Field(default=None, max_length=5000)
    price_cents: int = Field(default=None, ge=0, le=10_000_000)
    published_year: int | None = Field(default=None, ge=1000, le=2100)


class Book(BookBase, table=True):
    __tablename__ = "books"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("sold >= 0", name="sold_not_negative"),
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        Index("ix_books_search", "search", postgresql_using="gin"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    isbn: str = Field(max_length=13, unique=True)
    available: int = 0
    reserved: int = 0
    sold: int = 0
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    search: str | None = Field(
        default=None,
        sa_column=Column(TSVECTOR, Computed(SEARCH_EXPRESSION, persisted=True)),
        exclude=True,
    )


class BookPublic(BookBase):
    """A book as anyone sees it."""

    id: uuid.UUID
    isbn: str
    available: int
    created_at: datetime
    updated_at: datetime


class BookStaff(BookPublic):
    """A book as staff see it: every stock count."""

    reserved: int
    sold: int


class BooksPage(Page[BookStaff | BookPublic]):
    """A page of books: staff get the staff view of each."""


class Category(SQLModel):
    name: str
    books: int


class ReservationStatus(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"
    RETURNED = "returned"


class Reservation(SQLModel, table=True):
    """Stock set aside for one order until it is sold, released, or its lease runs out."""

    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_held_expiry", "expires_at", postgresql_where="status = 'held'"),
        {"schema": SCHEMA},
    )

    order_id: uuid.UUID = Field(primary_key=True)
    status: ReservationStatus = enum_field(ReservationStatus, default=ReservationStatus.HELD)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class ReservationLine(SQLModel, table=True):
    __tablename__ = "reservation_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        {"schema": SCHEMA},
    )

    order_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid,
            ForeignKey(f"{SCHEMA}.reservations.order_id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    book_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey(f"{SCHEMA}.books.id"), primary_key=True)
    )
    quantity: int
    unit_price_cents: int


class AdjustmentReason(StrEnum):
    RESTOCK = "restock"
    DAMAGED = "damaged"
    LOST = "lost"
    FOUND = "found"
    RETURNED = "returned"
    CORRECTION = "correction"


class StockAdjustmentCreate(SQLModel):
    model_config = ConfigDict(extra="forbid")

    delta: int = Field(
        ge=-1_000_000, le=1_000_000, description="Copies added (> 0) or taken away (< 0); not 0"
    )
    reason: AdjustmentReason
    note: str | None = Field(default=None, max_length=500)

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("a stock adjustment changes the stock: 0 changes nothing")
        return value


class StockAdjustment(SQLModel, table=True):
    """One change to a book's stock by staff, outside orders: the stock ledger."""

    __tablename__ = "stock_adjustments"
    __table_args__ = (
        CheckConstraint("delta <> 0", name="delta_not_zero"),
        Index("ix_stock_adjustments_book_newest", "book_id", "created_at"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    book_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey(f"{SCHEMA}.books.id"), nullable=False)
    )
    delta: int
    reason: AdjustmentReason = enum_field(AdjustmentReason, default=None)
    note: str | None = Field(default=None, max_length=500)
    actor: uuid.UUID = Field(description="The staff account that made it")
    available_after: int
    created_at: datetime = timestamp_field()


class StockAdjustmentPublic(SQLModel):
    id: uuid.UUID
    book_id: uuid.UUID
    delta: int
    reason: AdjustmentReason
    note: str | None
    actor: uuid.UUID
    available_after: int
    created_at: datetime


class StockAdjustmentsPage(Page[StockAdjustmentPublic]):
    """A page of a book's stock adjustments, newest first."""


class LowStockBook(SQLModel):
    book_id: uuid.UUID
    isbn: str
    title: str
    available: int
    reserved: int
    sold: int


class LowStockPage(Page[LowStockBook]):
    """Books in the catalog running out: fewest available first."""
