"""Catalog operations. They flush, never commit: the caller's unit of work does. Every change
to what a book is (added, changed, withdrawn, restored) sends BookChanged through the outbox in
the same transaction: sales keeps titles and prices from it for carts."""

import uuid
from typing import Any, Literal

from sqlalchemy import ColumnElement, RowMapping, Table, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.columns import utcnow
from bookstore_shared.messages import BookChanged
from bookstore_shared.outbox import Outbox
from bookstore_shared.pagination import PageParams
from inventory.errors import BookNotFound, InsufficientStock, IsbnTaken
from inventory.models import (
    OUTBOX,
    Book,
    BookCreate,
    BookUpdate,
    Category,
    StockAdjustment,
    StockAdjustmentCreate,
)

outbox = Outbox(OUTBOX)


def book_changed(book: Any) -> BookChanged:
    """What sales keeps of a book (a Book, or a row with its columns)."""
    return BookChanged(
        book_id=book.id,
        title=book.title,
        price_cents=book.price_cents,
        deleted=book.deleted_at is not None,
        changed_at=book.updated_at,
    )


async def _announce(session: AsyncSession, book: Book) -> None:
    await outbox.add(session, book_changed(book))


BookSort = Literal[
    "relevance",
    "title",
    "-title",
    "author",
    "-author",
    "price_cents",
    "-price_cents",
    "created_at",
    "-created_at",
]

_SORT_COLUMNS: dict[str, ColumnElement[object]] = {
    "title": Book.title,  # type: ignore[dict-item]
    "author": Book.author,  # type: ignore[dict-item]
    "price_cents": Book.price_cents,  # type: ignore[dict-item]
    "created_at": Book.created_at,  # type: ignore[dict-item]
}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_books(
    session: AsyncSession,
    *,
    page: PageParams,
    q: str | None = None,
    author: str | None = None,
    category: str | None = None,
    sort: BookSort | None = None,
    deleted: bool = False,
) -> tuple[list[Book], int]:
    """The catalog; with `deleted`, the books withdrawn from it instead."""
    withdrawn = Book.deleted_at.is_not(None) if deleted else Book.deleted_at.is_(None)  # type: ignore[union-attr]
    query = select(Book).where(withdrawn)
    ts_query = func.websearch_to_tsquery("english", q) if q else None
    if ts_query is not None:
        query = query.where(Book.search.op("@@")(ts_query))  # type: ignore[union-attr]
    if author:
        query = query.where(Book.author.ilike(f"%{_escape_like(author)}%", escape="\\"))  # type: ignore[attr-defined]
    if category:
        query = query.where(func.lower(Book.category) == category.lower())

    count = await session.scalar(select(func.count()).select_from(query.subquery()))

    sort = sort or ("relevance" if ts_query is not None else "title")
    if sort == "relevance":
        order = (
            [func.ts_rank(Book.search, ts_query).desc(), Book.title]
            if ts_query is not None
            else [Book.title]
        )
    else:
        column = _SORT_COLUMNS[sort.lstrip("-")]
        order = [column.desc() if sort.startswith("-") else column.asc()]
    query = query.order_by(*order, Book.id).offset(page.offset).limit(page.size)
    books = (await session.scalars(query)).all()
    return list(books), count or 0


BOOKS: Table = Book.__table__  # type: ignore[assignment]
# A catalog read: every column a view shows (not the search vector), built once.
_READ_BOOK = select(*(c for c in BOOKS.columns if c.name != "search")).where(
    BOOKS.c.id == bindparam("book"), BOOKS.c.deleted_at.is_(None)
)


async def read_book(session: AsyncSession, *, book_id: uuid.UUID) -> RowMapping:
    """A book as the catalog shows it (the hot read: one prebuilt statement, no ORM)."""
    row = (await session.execute(_READ_BOOK, {"book": book_id})).mappings().first()
    if row is None:
        raise BookNotFound(f"No book with id {book_id}.")
    return row


async def get_book(session: AsyncSession, *, book_id: uuid.UUID) -> Book:
    book = await session.get(Book, book_id)
    if book is None or book.deleted_at is not None:
        raise BookNotFound(f"No book with id {book_id}.")
    return book


async def get_book_by_isbn(session: AsyncSession, *, isbn: str) -> Book:
    book = await session.scalar(
        select(Book).where(Book.isbn == isbn, Book.deleted_at.is_(None))  # type: ignore[union-attr]
    )
    if book is None:
        raise BookNotFound(f"No book with ISBN {isbn}.")
    return book


async def create_book(session: AsyncSession, *, data: BookCreate) -> Book:
    existing = await session.scalar(select(Book.id).where(Book.isbn == data.isbn))
    if existing is not None:
        raise IsbnTaken(f"ISBN {data.isbn} belongs to book {existing}.", book_id=existing)
    book = Book.model_validate(data, update={"available": data.stock})
    session.add(book)
    try:
        await session.flush()
    except IntegrityError as exc:  # the same ISBN created concurrently
        raise IsbnTaken(f"ISBN {data.isbn} exists already.") from exc
    await _announce(session, book)
    return book


async def update_book(session: AsyncSession, *, book_id: uuid.UUID, changes: BookUpdate) -> Book:
    book = await get_book(session, book_id=book_id)
    book.sqlmodel_update(changes.model_dump(exclude_unset=True))
    book.updated_at = utcnow()
    await session.flush()
    await _announce(session, book)
    return book


async def delete_book(session: AsyncSession, *, book_id: uuid.UUID) -> None:
    book = await get_book(session, book_id=book_id)
    book.deleted_at = book.updated_at = utcnow()
    await session.flush()
    await _announce(session, book)


async def list_categories(session: AsyncSession) -> list[Category]:
    rows = await session.execute(
        select(Book.category, func.count())
        .where(Book.deleted_at.is_(None))  # type: ignore[union-attr]
        .group_by(Book.category)
        .order_by(Book.category)
    )
    return [Category(name=name, books=n) for name, n in rows.all()]


async def restore_book(session: AsyncSession, *, book_id: uuid.UUID) -> Book:
    """Bring a withdrawn book back into the catalog (a book in it already stays as it is)."""
    book = await session.get(Book, book_id, with_for_update=True)
    if book is None:
        raise BookNotFound(f"No book with id {book_id}.")
    if book.deleted_at is not None:
        book.deleted_at, book.updated_at = None, utcnow()
        await session.flush()
        await _announce(session, book)
    return book


_ADJUST = (
    update(BOOKS)
    .where(
        BOOKS.c.id == bindparam("book"),
        BOOKS.c.deleted_at.is_(None),
        BOOKS.c.available + bindparam("delta") >= 0,
    )
    .values(available=BOOKS.c.available + bindparam("delta"), updated_at=bindparam("now"))
    .returning(BOOKS.c.available)
)


async def adjust_stock(
    session: AsyncSession, *, book_id: uuid.UUID, data: StockAdjustmentCreate, actor: uuid.UUID
) -> StockAdjustment:
    """Add copies to a book's shelf or take them off, and record it in the ledger. One
    conditional UPDATE: it waits for an order reserving the same book, and it never takes
    more than is available (what orders hold is not on the shelf)."""
    now = utcnow()
    available = await session.scalar(_ADJUST, {"book": book_id, "delta": data.delta, "now": now})
    if available is None:
        book = await session.get(Book, book_id)
        if book is None or book.deleted_at is not None:
            raise BookNotFound(f"No book with id {book_id}.")
        raise InsufficientStock(
            f"{-data.delta} copies cannot be taken: {book.available} available.",
            available=book.available,
        )
    adjustment = StockAdjustment(
        book_id=book_id,
        delta=data.delta,
        reason=data.reason,
        note=data.note,
        actor=actor,
        available_after=available,
        created_at=now,
    )
    session.add(adjustment)
    await session.flush()
    return adjustment


async def list_adjustments(
    session: AsyncSession, *, book_id: uuid.UUID, page: PageParams
) -> tuple[list[StockAdjustment], int]:
    """A book's ledger, newest first (a withdrawn book's too: its history stays)."""
    if await session.get(Book, book_id) is None:
        raise BookNotFound(f"No book with id {book_id}.")
    mine = StockAdjustment.book_id == book_id  # type: ignore[arg-type]
    count = await session.scalar(select(func.count()).where(mine))
    rows = await session.scalars(
        select(StockAdjustment)
        .where(mine)
        .order_by(StockAdjustment.created_at.desc(), StockAdjustment.id)  # type: ignore[attr-defined]
        .offset(page.offset)
        .limit(page.size)
    )
    return list(rows.all()), count or 0


async def low_stock(
    session: AsyncSession, *, threshold: int, page: PageParams
) -> tuple[list[RowMapping], int]:
    """Books in the catalog with at most `threshold` copies available, fewest first."""
    low = (BOOKS.c.deleted_at.is_(None), BOOKS.c.available <= threshold)
    count = await session.scalar(select(func.count()).select_from(BOOKS).where(*low))
    rows = await session.execute(
        select(
            BOOKS.c.id.label("book_id"),
            BOOKS.c.isbn,
            BOOKS.c.title,
            BOOKS.c.available,
            BOOKS.c.reserved,
            BOOKS.c.sold,
        )
        .where(*low)
        .order_by(BOOKS.c.available, BOOKS.c.title, BOOKS.c.id)
        .offset(page.offset)
        .limit(page.size)
    )
    return list(rows.mappings().all()), count or 0
