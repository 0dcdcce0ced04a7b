"""Books: the catalog and the stock counts (available, reserved, sold) in one row; the stock
ledger of staff adjustments; reservations; readers' reviews (their count and total kept on the
book) and the cached summary of each book's description."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, WithJsonSchema, field_validator
from sqlalchemy import (
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlmodel import Field, SQLModel
from stdnum import isbn as stdnum_isbn
from stdnum.exceptions import ValidationError as IsbnError

from bookstore_shared.columns import WholeNumber, enum_field, timestamp_field
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


# A book's average rating to one decimal (null without reviews), kept by Postgres.
RATING_AVERAGE_EXPRESSION = "round(rating_total::numeric / nullif(rating_count, 0), 1)"


class Book(BookBase, table=True):
    __tablename__ = "books"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("sold >= 0", name="sold_not_negative"),
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        CheckConstraint("rating_count >= 0", name="rating_count_not_negative"),
        Index("ix_books_search", "search", postgresql_using="gin"),
        {"schema": SCHEMA},
    )
    # Columns Postgres computes (the average, the search vector) come back with every INSERT
    # and UPDATE (RETURNING), so a book is whole after a flush.
    __mapper_args__ = {"eager_defaults": True}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    isbn: str = Field(max_length=13, unique=True)
    available: int = 0
    reserved: int = 0
    sold: int = 0
    # The reviews' count and the sum of their ratings, changed with each review.
    rating_count: int = 0
    rating_total: int = 0
    rating_average: float | None = Field(
        default=None,
        sa_column=Column(
            Numeric(2, 1, asdecimal=False), Computed(RATING_AVERAGE_EXPRESSION, persisted=True)
        ),
    )
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
    rating_average: float | None = Field(
        default=None, description="The reviews' average rating, to one decimal; null if none"
    )
    rating_count: int = Field(default=0, description="How many reviews the book has")
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
        Index("ix_reservations_customer", "customer_id"),
        {"schema": SCHEMA},
    )

    order_id: uuid.UUID = Field(primary_key=True)
    # Who ordered (unknown for orders placed before reservations recorded it): a review by
    # them of a book they bought is a verified purchase.
    customer_id: uuid.UUID | None = None
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


REVIEW_TITLE_MAX = 120
REVIEW_BODY_MAX = 5000


class Review(SQLModel, table=True):
    """One account's review of one book."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("book_id", "author_id", name="one_review_per_author"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_one_to_five"),
        Index("ix_reviews_book_newest", "book_id", "created_at"),
        Index("ix_reviews_book_rating", "book_id", "rating", "created_at"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    book_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey(f"{SCHEMA}.books.id"), nullable=False)
    )
    author_id: uuid.UUID
    rating: int
    title: str | None = Field(default=None, max_length=REVIEW_TITLE_MAX)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class ReviewCreate(SQLModel):
    model_config = ConfigDict(extra="forbid")

    rating: WholeNumber = Field(ge=1, le=5, description="1 (poor) to 5 (excellent)")
    title: str | None = Field(default=None, min_length=1, max_length=REVIEW_TITLE_MAX)
    body: str = Field(min_length=1, max_length=REVIEW_BODY_MAX)


class ReviewUpdate(SQLModel):
    """The fields to change; the title may be cleared with null."""

    model_config = ConfigDict(extra="forbid")

    rating: WholeNumber = Field(default=None, ge=1, le=5)
    title: str | None = Field(default=None, min_length=1, max_length=REVIEW_TITLE_MAX)
    body: str = Field(default=None, min_length=1, max_length=REVIEW_BODY_MAX)


class ReviewPublic(SQLModel):
    id: uuid.UUID
    book_id: uuid.UUID
    author_id: uuid.UUID
    rating: int
    title: str | None
    body: str
    verified_purchase: bool = Field(
        description="The author has a confirmed order with this book in it"
    )
    created_at: datetime
    updated_at: datetime


class ReviewsPage(Page[ReviewPublic]):
    """A page of a book's reviews."""


class BookSummary(SQLModel, table=True):
    """The last summary made of a book's description, and of which description (its hash)."""

    __tablename__ = "book_summaries"
    __table_args__ = ({"schema": SCHEMA},)

    book_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid, ForeignKey(f"{SCHEMA}.books.id", ondelete="CASCADE"), primary_key=True
        )
    )
    description_sha256: str = Field(max_length=64)
    summary: str | None = Field(default=None, sa_column=Column(Text))
    provider: str = Field(max_length=40)
    model: str | None = Field(default=None, max_length=200)
    generated_at: datetime = timestamp_field()


class BookSummaryPublic(SQLModel):
    book_id: uuid.UUID
    summary: str | None = Field(description="Null when the book has no description")
    provider: str = Field(
        description="What wrote it: `local` (extractive, in-process), `openai`, or "
        "`local-fallback` (the configured provider failed; it is asked again next time)"
    )
    model: str | None
    generated_at: datetime
