"""The cart: one per signed-in account, kept in Postgres, ordered with `from_cart`.

Titles and prices come from sales' own copy of the catalog (`catalog_books`), kept from
inventory's BookChanged events: reading a cart never waits on inventory, and a cart shows
today's prices. `available` says whether the book is still in the catalog; whether there are
copies enough is settled when the cart is ordered (the saga reserves them, as for any order):
stock changes with every order, and sending each change to sales would cost every order a
message more.
"""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.columns import WholeNumber, utcnow
from bookstore_shared.consumer import HandlerContext, Handlers
from bookstore_shared.db import SessionDep, Tx
from bookstore_shared.errors import DomainError, NotFound
from bookstore_shared.identity import CurrentUser, Principal
from bookstore_shared.messages import BookChanged
from sales.models import Cart, CartItem, CatalogBook

MAX_LINES = 50
MAX_QUANTITY = 100
CARTS: Table = Cart.__table__  # type: ignore[assignment]
ITEMS: Table = CartItem.__table__  # type: ignore[assignment]
CATALOG: Table = CatalogBook.__table__  # type: ignore[assignment]
router = APIRouter(prefix="/cart", tags=["cart"])


class BookNotFound(NotFound):
    code, title = "book_not_found", "Book not found"


class CartLimit(DomainError):
    status, code, title = 422, "cart_limit", "The cart cannot hold that"


class CartEmpty(DomainError):
    status, code, title = 422, "cart_empty", "The cart is empty"


class CartItemAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    book_id: uuid.UUID
    quantity: WholeNumber = Field(default=1, ge=1, le=MAX_QUANTITY)


class CartItemSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: WholeNumber = Field(ge=0, le=MAX_QUANTITY, description="0 takes the line out")


class CartLine(BaseModel):
    book_id: uuid.UUID
    title: str
    unit_price_cents: int
    quantity: int
    line_total_cents: int
    available: bool = Field(description="Still in the catalog (stock is settled on ordering)")


class CartPublic(BaseModel):
    items: list[CartLine]
    item_count: int = Field(description="Copies in the cart, every line together")
    total_cents: int = Field(description="At today's prices, of the lines still available")


# --- The cart's rows ------------------------------------------------------------------------

_LOCK = (
    insert(CARTS)
    .values(customer_id=bindparam("customer"), updated_at=bindparam("now"))
    .on_conflict_do_update(
        index_elements=[CARTS.c.customer_id], set_={"updated_at": bindparam("now")}
    )
)
_LINES = (
    select(
        ITEMS.c.book_id, ITEMS.c.quantity, CATALOG.c.title, CATALOG.c.price_cents, CATALOG.c.deleted
    )
    .select_from(ITEMS.join(CATALOG, CATALOG.c.book_id == ITEMS.c.book_id))
    .where(ITEMS.c.customer_id == bindparam("customer"))
    .order_by(ITEMS.c.added_at, ITEMS.c.book_id)
)


async def _lock(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """The account's cart row, created if need be and locked: its changes go one at a time."""
    await session.execute(_LOCK, {"customer": customer_id, "now": utcnow()})


async def read(session: AsyncSession, customer_id: uuid.UUID) -> CartPublic:
    lines = [
        CartLine(
            book_id=row.book_id,
            title=row.title,
            unit_price_cents=row.price_cents,
            quantity=row.quantity,
            line_total_cents=row.price_cents * row.quantity,
            available=not row.deleted,
        )
        for row in await session.execute(_LINES, {"customer": customer_id})
    ]
    return CartPublic(
        items=lines,
        item_count=sum(line.quantity for line in lines),
        total_cents=sum(line.line_total_cents for line in lines if line.available),
    )


async def _in_catalog(session: AsyncSession, book_id: uuid.UUID) -> None:
    book = await session.get(CatalogBook, book_id)
    if book is None or book.deleted:
        raise BookNotFound(f"No book with id {book_id}.")


async def put(
    session: AsyncSession, customer_id: uuid.UUID, book_id: uuid.UUID, quantity: int, *, add: bool
) -> None:
    """Set a line to `quantity` copies, or with `add` add them to it; 0 takes it out."""
    await _lock(session, customer_id)
    held = await session.scalar(
        select(ITEMS.c.quantity).where(
            ITEMS.c.customer_id == customer_id, ITEMS.c.book_id == book_id
        )
    )
    wanted = (held or 0) + quantity if add else quantity
    if wanted == 0:
        await session.execute(
            delete(ITEMS).where(ITEMS.c.customer_id == customer_id, ITEMS.c.book_id == book_id)
        )
        return
    if wanted > MAX_QUANTITY:
        raise CartLimit(f"At most {MAX_QUANTITY} copies of a book per order ({wanted} asked).")
    if held is None:
        await _in_catalog(session, book_id)
        lines = await session.scalar(
            select(func.count()).select_from(ITEMS).where(ITEMS.c.customer_id == customer_id)
        )
        if (lines or 0) >= MAX_LINES:
            raise CartLimit(f"A cart holds at most {MAX_LINES} books.")
    await session.execute(
        insert(ITEMS)
        .values(customer_id=customer_id, book_id=book_id, quantity=wanted, added_at=utcnow())
        .on_conflict_do_update(
            index_elements=[ITEMS.c.customer_id, ITEMS.c.book_id], set_={"quantity": wanted}
        )
    )


async def empty(session: AsyncSession, customer_id: uuid.UUID) -> None:
    await session.execute(delete(ITEMS).where(ITEMS.c.customer_id == customer_id))


_TAKE = (
    delete(ITEMS)
    .where(ITEMS.c.customer_id == bindparam("customer"))
    .returning(ITEMS.c.book_id, ITEMS.c.quantity, ITEMS.c.added_at)
)


async def take(tx: Tx, customer_id: uuid.UUID) -> list[tuple[uuid.UUID, int]]:
    """The cart's lines for an order, and the cart emptied, in the caller's transaction."""
    await tx.value(_LOCK, {"customer": customer_id, "now": utcnow()})
    taken = sorted(await tx.rows(_TAKE, {"customer": customer_id}), key=_in_added_order)
    if not taken:
        raise CartEmpty("Add books to the cart first: POST /api/cart/items.")
    return [(row["book_id"], row["quantity"]) for row in taken]


def _in_added_order(row: Any) -> tuple[Any, ...]:
    return row["added_at"], row["book_id"]


# --- The catalog as sales keeps it ----------------------------------------------------------

_BOOK = {
    name: bindparam(f"book__{name}")
    for name in ("book_id", "title", "price_cents", "deleted", "changed_at")
}
_KEEP_BOOK = (
    insert(CATALOG)
    .values(_BOOK)
    .on_conflict_do_update(
        index_elements=[CATALOG.c.book_id],
        set_={
            name: bindparam(f"book__{name}")
            for name in ("title", "price_cents", "deleted", "changed_at")
        },
        where=CATALOG.c.changed_at < bindparam("book__changed_at"),
    )
)


def catalog_handlers() -> Handlers:
    """BookChanged, kept if it is newer than what sales has (events may come out of order)."""

    async def keep(ctx: HandlerContext, message: BookChanged) -> None:
        ctx.writes.add(_KEEP_BOOK, {f"book__{k}": v for k, v in message.model_dump().items()})

    return {BookChanged: keep}


# --- Routes ---------------------------------------------------------------------------------

BookId = Annotated[uuid.UUID, Path(description="The book's id")]


def _customer(user: Principal) -> uuid.UUID:
    assert user.user_id is not None
    customer: uuid.UUID = user.user_id
    return customer


@router.get("")
async def get_cart(session: SessionDep, user: CurrentUser) -> CartPublic:
    """Your cart, at today's prices."""
    return await read(session, _customer(user))


@router.post("/items", status_code=status.HTTP_201_CREATED)
async def add_item(data: CartItemAdd, session: SessionDep, user: CurrentUser) -> CartPublic:
    """Put copies of a book in your cart (added to its line if it has one): at most 100 copies
    a book and 50 books (422 `cart_limit`); a book not in the catalog is a 404."""
    await put(session, _customer(user), data.book_id, data.quantity, add=True)
    return await read(session, _customer(user))


@router.put("/items/{book_id}")
async def set_item(
    book_id: BookId, data: CartItemSet, session: SessionDep, user: CurrentUser
) -> CartPublic:
    """Set how many copies of a book your cart holds; 0 takes it out."""
    await put(session, _customer(user), book_id, data.quantity, add=False)
    return await read(session, _customer(user))


@router.delete("/items/{book_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_item(book_id: BookId, session: SessionDep, user: CurrentUser) -> Response:
    """Take a book out of your cart (not in it: nothing changes)."""
    await put(session, _customer(user), book_id, 0, add=False)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
async def empty_cart(session: SessionDep, user: CurrentUser) -> Response:
    """Empty your cart."""
    await empty(session, _customer(user))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
