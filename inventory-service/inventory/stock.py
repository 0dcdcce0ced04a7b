"""Stock movements for orders: reserve, commit, release, return, expire.

Every movement changes the books it touches in one fixed order (by id), so two orders over the
same books never deadlock, and the CHECK constraints on the counts make going below zero
impossible whatever the code does. For every book, at every moment:
stock taken in = available + reserved + sold.

These run once or twice per order, so each is a few statements built once (SQLAlchemy Core,
run by asyncpg in a `Tx`): the reads that lock what a movement touches, then its writes, which
go with the caller's other `writes` (the reply's outbox row) in one statement.
"""

import uuid
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import Integer, Table, Update, Uuid, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from bookstore_shared.columns import utcnow
from bookstore_shared.db import Tx
from bookstore_shared.messages import (
    Line,
    Message,
    PricedLine,
    ReservationExpired,
    ShortLine,
    StockCommitRejected,
    StockCommitted,
    StockRejected,
    StockReleased,
    StockReserved,
    StockReturned,
)
from bookstore_shared.writes import Writes, arrays, insert_row, row, unnest
from inventory.models import Book, Reservation, ReservationLine, ReservationStatus

BOOKS: Table = Book.__table__  # type: ignore[assignment]
RESERVATIONS: Table = Reservation.__table__  # type: ignore[assignment]
LINES: Table = ReservationLine.__table__  # type: ignore[assignment]

_RESERVATION = (
    select(RESERVATIONS.c.status, RESERVATIONS.c.expires_at)
    .where(RESERVATIONS.c.order_id == bindparam("order"))
    .with_for_update()
)
_LINES = (  # the order's lines, their books locked in id order before anything moves
    select(LINES.c.book_id, LINES.c.quantity, LINES.c.unit_price_cents)
    .join(BOOKS, BOOKS.c.id == LINES.c.book_id)
    .where(LINES.c.order_id == bindparam("order"))
    .order_by(LINES.c.book_id)
    .with_for_update(of=BOOKS)
)
_IN_BOOKS = BOOKS.c.id == func.any(bindparam("books", type_=ARRAY(Uuid())))
_BOOKS_TO_RESERVE = (
    select(BOOKS.c.id, BOOKS.c.title, BOOKS.c.price_cents, BOOKS.c.available, BOOKS.c.deleted_at)
    .where(_IN_BOOKS)
    .order_by(BOOKS.c.id)
    .with_for_update()
)
_TITLES = select(BOOKS.c.id, BOOKS.c.title).where(_IN_BOOKS)
_INSERT_RESERVATION = insert_row(RESERVATIONS, "reservation")
_LINE = {"book_id": Uuid(), "quantity": Integer(), "unit_price_cents": Integer()}
_line = unnest("line", _LINE)
_INSERT_LINES = insert(LINES).from_select(
    ["order_id", *_LINE],
    select(bindparam("order", type_=Uuid()), *(_line.c[name] for name in _LINE)),
)
_SET_STATUS = (
    update(RESERVATIONS)
    .where(RESERVATIONS.c.order_id == bindparam("order"))
    .values(status=bindparam("new_status"), updated_at=bindparam("now"))
)
_MOVE = {"book_id": Uuid(), "quantity": Integer()}


def _moving(**deltas: int) -> Update:
    """`UPDATE books` moving each line's quantity between counts, e.g. reserved=-1, sold=+1.
    Its books are locked already, in id order (`_LINES`, `_BOOKS_TO_RESERVE`)."""
    move = unnest("move", _MOVE)
    return (
        update(BOOKS)
        .where(BOOKS.c.id == move.c.book_id)
        .values(
            {name: BOOKS.c[name] + sign * move.c.quantity for name, sign in deltas.items()}
            | {"updated_at": bindparam("now")}
        )
    )


_RESERVE = _moving(available=-1, reserved=+1)
_COMMIT = _moving(reserved=-1, sold=+1)
_RELEASE = _moving(reserved=-1, available=+1)
_RETURN = _moving(sold=-1, available=+1)


async def _move(
    tx: Tx,
    writes: Writes,
    statement: Update,
    order_id: uuid.UUID,
    status: ReservationStatus,
) -> None:
    """Apply a movement to each of the order's lines, and give its reservation `status`."""
    lines = await tx.rows(_LINES, {"order": order_id})
    now = utcnow()
    writes.add(statement, arrays("move", _MOVE, lines) | {"now": now})
    writes.add(_SET_STATUS, {"order": order_id, "new_status": status, "now": now})


async def reserve_stock(
    tx: Tx,
    writes: Writes,
    *,
    order_id: uuid.UUID,
    lines: list[Line],
    lease: timedelta,
    customer_id: uuid.UUID | None = None,
) -> Message:
    """All or nothing: every line is set aside, or none is and the short ones are named."""
    existing = await tx.row(_RESERVATION, {"order": order_id})
    if existing is not None:  # the same order asked again (a retried command): same answer
        return await _answer_for_existing(tx, order_id, existing["status"], existing["expires_at"])

    wanted = Counter[uuid.UUID]()
    for line in lines:
        wanted[line.book_id] += line.quantity
    books = {row["id"]: row for row in await tx.rows(_BOOKS_TO_RESERVE, {"books": sorted(wanted)})}
    short = [
        ShortLine(
            book_id=book_id,
            requested=quantity,
            available=books[book_id]["available"] if book_id in books else 0,
        )
        for book_id, quantity in sorted(wanted.items())
        if book_id not in books
        or books[book_id]["deleted_at"] is not None
        or books[book_id]["available"] < quantity
    ]
    if short:
        return StockRejected(order_id=order_id, short=short)

    now, expires_at = utcnow(), utcnow() + lease
    lines = [
        {
            "book_id": book_id,
            "quantity": quantity,
            "unit_price_cents": books[book_id]["price_cents"],
        }
        for book_id, quantity in sorted(wanted.items())
    ]
    writes.add(_RESERVE, arrays("move", _MOVE, lines) | {"now": now})
    _insert_reservation(
        writes, order_id, ReservationStatus.HELD, expires_at=expires_at, customer_id=customer_id
    )
    writes.add(_INSERT_LINES, arrays("line", _LINE, lines) | {"order": order_id})
    return StockReserved(
        order_id=order_id,
        lines=[
            PricedLine(
                book_id=book_id,
                quantity=quantity,
                title=books[book_id]["title"],
                unit_price_cents=books[book_id]["price_cents"],
            )
            for book_id, quantity in sorted(wanted.items())
        ],
        expires_at=expires_at,
    )


async def _answer_for_existing(
    tx: Tx, order_id: uuid.UUID, status: ReservationStatus, expires_at: object
) -> Message:
    if status not in (ReservationStatus.HELD, ReservationStatus.COMMITTED):
        return ReservationExpired(order_id=order_id)
    lines = await tx.rows(_LINES, {"order": order_id})
    titles = {
        row["id"]: row["title"]
        for row in await tx.rows(_TITLES, {"books": [line["book_id"] for line in lines]})
    }
    return StockReserved(
        order_id=order_id,
        lines=[
            PricedLine(
                book_id=line["book_id"],
                quantity=line["quantity"],
                title=titles.get(line["book_id"], ""),
                unit_price_cents=line["unit_price_cents"],
            )
            for line in lines
        ],
        expires_at=expires_at,
    )


async def _status(tx: Tx, order_id: uuid.UUID) -> ReservationStatus | None:
    row = await tx.row(_RESERVATION, {"order": order_id})
    return None if row is None else ReservationStatus(row["status"])


async def commit_stock(tx: Tx, writes: Writes, *, order_id: uuid.UUID) -> Message:
    status = await _status(tx, order_id)
    if status is None:
        return StockCommitRejected(order_id=order_id, reason="no reservation for this order")
    if status == ReservationStatus.COMMITTED:
        return StockCommitted(order_id=order_id)
    if status != ReservationStatus.HELD:
        return StockCommitRejected(order_id=order_id, reason=f"reservation {status}")
    await _move(tx, writes, _COMMIT, order_id, ReservationStatus.COMMITTED)
    return StockCommitted(order_id=order_id)


async def release_stock(tx: Tx, writes: Writes, *, order_id: uuid.UUID) -> Message:
    status = await _status(tx, order_id)
    if status is None:
        _tombstone(writes, order_id, ReservationStatus.RELEASED)
    elif status == ReservationStatus.HELD:
        await _move(tx, writes, _RELEASE, order_id, ReservationStatus.RELEASED)
    return StockReleased(order_id=order_id)


async def return_stock(tx: Tx, writes: Writes, *, order_id: uuid.UUID) -> Message:
    """Sold stock back on the shelf. Held stock (the sale had not happened yet: its command is
    late) is released instead, and the sale can no longer happen."""
    status = await _status(tx, order_id)
    if status is None:
        _tombstone(writes, order_id, ReservationStatus.RETURNED)
    elif status == ReservationStatus.COMMITTED:
        await _move(tx, writes, _RETURN, order_id, ReservationStatus.RETURNED)
    elif status == ReservationStatus.HELD:
        await _move(tx, writes, _RELEASE, order_id, ReservationStatus.RETURNED)
    return StockReturned(order_id=order_id)


def _tombstone(writes: Writes, order_id: uuid.UUID, status: ReservationStatus) -> None:
    """Undone before it was done (the command is late, or lost): a reservation with no lines
    is kept, so that the command, should it come, is refused and never applied."""
    _insert_reservation(writes, order_id, status, expires_at=utcnow())


def _insert_reservation(
    writes: Writes,
    order_id: uuid.UUID,
    status: ReservationStatus,
    *,
    expires_at: datetime,
    customer_id: uuid.UUID | None = None,
) -> None:
    now = utcnow()
    reservation = {
        "order_id": order_id,
        "customer_id": customer_id,
        "status": status,
        "expires_at": expires_at,
        "created_at": now,
        "updated_at": now,
    }
    writes.add(_INSERT_RESERVATION, row("reservation", reservation))


_EXPIRED = (
    select(RESERVATIONS.c.order_id)
    .where(
        RESERVATIONS.c.status == ReservationStatus.HELD,
        RESERVATIONS.c.expires_at < bindparam("now"),
    )
    .order_by(RESERVATIONS.c.expires_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


async def expire_reservations(tx: Tx, *, limit: int = 100) -> list[Message]:
    """Release held stock whose lease has run out; replicas share the work (SKIP LOCKED)."""
    messages: list[Message] = []
    for expired in await tx.rows(_EXPIRED, {"now": utcnow(), "limit": limit}):
        writes = Writes()
        await _move(tx, writes, _RELEASE, expired["order_id"], ReservationStatus.EXPIRED)
        await writes.run(tx)
        messages.append(ReservationExpired(order_id=expired["order_id"]))
    return messages
