"""Stock movements for orders: reserve, commit, release, return, expire.

Every movement locks the books it touches in one fixed order (by id) before it changes them,
so two orders over the same books never deadlock, and the CHECK constraints on the counts make
going below zero impossible whatever the code does. For every book, at every moment:
stock taken in = available + reserved + sold.

These run once or twice per order, so each is a read and a write, statements built once
(SQLAlchemy Core, run by asyncpg in a `Tx`): the read takes no lock; the write, which goes with
the caller's other `writes` (the reply's outbox row) in one statement, is guarded
(`bookstore_shared.writes`): a reservation takes its copies only if every book still has them,
and a reservation moves on (committed, released, returned) only from the status it was read
in. Otherwise nothing is written and the message is handled again, on a fresh read.
"""

import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

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

_RESERVATION = select(RESERVATIONS.c.status, RESERVATIONS.c.expires_at).where(
    RESERVATIONS.c.order_id == bindparam("order")
)
_LINES = (
    select(LINES.c.book_id, LINES.c.quantity, LINES.c.unit_price_cents)
    .where(LINES.c.order_id == bindparam("order"))
    .order_by(LINES.c.book_id)
)
# A reservation's status with its lines, in one read (no reservation: no row).
_RESERVATION_LINES = (
    select(RESERVATIONS.c.status, LINES.c.book_id, LINES.c.quantity)
    .select_from(RESERVATIONS.outerjoin(LINES, LINES.c.order_id == RESERVATIONS.c.order_id))
    .where(RESERVATIONS.c.order_id == bindparam("order"))
    .order_by(LINES.c.book_id)
)
_IN_BOOKS = BOOKS.c.id == func.any(bindparam("books", type_=ARRAY(Uuid())))
_BOOKS_TO_RESERVE = select(
    BOOKS.c.id, BOOKS.c.title, BOOKS.c.price_cents, BOOKS.c.available, BOOKS.c.deleted_at
).where(_IN_BOOKS)
_TITLES = select(BOOKS.c.id, BOOKS.c.title).where(_IN_BOOKS)
_INSERT_RESERVATION = insert_row(RESERVATIONS, "reservation")
_LINE = {"book_id": Uuid(), "quantity": Integer(), "unit_price_cents": Integer()}
_line = unnest("line", _LINE)
_INSERT_LINES = insert(LINES).from_select(
    ["order_id", *_LINE],
    select(bindparam("order", type_=Uuid()), *(_line.c[name] for name in _LINE)),
)
# The guard of a movement: the reservation is still in the status it was read in.
_SET_STATUS = (
    update(RESERVATIONS)
    .where(
        RESERVATIONS.c.order_id == bindparam("order"),
        RESERVATIONS.c.status == bindparam("read_status"),
    )
    .values(status=bindparam("new_status"), updated_at=bindparam("now"))
    .returning(RESERVATIONS.c.order_id)
)
_MOVE = {"book_id": Uuid(), "quantity": Integer()}


def _moving(*, only_if_enough: bool = False, **deltas: int) -> Update:
    """`UPDATE books` moving each line's quantity between counts, e.g. reserved=-1, sold=+1,
    its books locked first, in id order. Returns the books it moved: with `only_if_enough`,
    only those still in the catalog with the copies it takes."""
    move = unnest("move", _MOVE)
    locked = (
        select(BOOKS.c.id)
        .where(BOOKS.c.id == func.any(bindparam("move__book_id", type_=ARRAY(Uuid()))))
        .order_by(BOOKS.c.id)
        .with_for_update()
        .subquery("locked")
    )
    moving = (
        update(BOOKS)
        .where(BOOKS.c.id == locked.c.id, BOOKS.c.id == move.c.book_id)
        .values(
            {
                name: BOOKS.c[name] + move.c.quantity
                if sign > 0
                else BOOKS.c[name] - move.c.quantity
                for name, sign in deltas.items()
            }
            | {"updated_at": bindparam("now")}
        )
        .returning(BOOKS.c.id)
    )
    if only_if_enough:
        moving = moving.where(BOOKS.c.deleted_at.is_(None), BOOKS.c.available >= move.c.quantity)
    return moving


# The guard of a reservation: it moves every line's book, or the reservation writes nothing.
_RESERVE = _moving(available=-1, reserved=+1, only_if_enough=True)
_COMMIT = _moving(reserved=-1, sold=+1)
_RELEASE = _moving(reserved=-1, available=+1)
_RETURN = _moving(sold=-1, available=+1)


async def _reservation(tx: Tx, order_id: uuid.UUID) -> tuple[ReservationStatus | None, list[Any]]:
    """The order's reservation as it stands: its status (None: there is none) and its lines."""
    rows = await tx.rows(_RESERVATION_LINES, {"order": order_id})
    if not rows:
        return None, []
    return ReservationStatus(rows[0]["status"]), [r for r in rows if r["book_id"] is not None]


def _move(
    writes: Writes,
    statement: Update,
    order_id: uuid.UUID,
    lines: list[Any],
    *,
    read: ReservationStatus,
    to: ReservationStatus,
) -> None:
    """Apply a movement to each of the order's lines and move its reservation on from `read`
    (the status it was read in: the guard) `to` its next."""
    now = utcnow()
    writes.guard(
        _SET_STATUS, {"order": order_id, "read_status": read, "new_status": to, "now": now}
    )
    if lines:
        writes.add(statement, arrays("move", _MOVE, lines) | {"now": now})


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
    writes.guard(_RESERVE, arrays("move", _MOVE, lines) | {"now": now}, rows=len(lines))
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


async def commit_stock(tx: Tx, writes: Writes, *, order_id: uuid.UUID) -> Message:
    status, lines = await _reservation(tx, order_id)
    if status is None:
        return StockCommitRejected(order_id=order_id, reason="no reservation for this order")
    if status == ReservationStatus.COMMITTED:
        return StockCommitted(order_id=order_id)
    if status != ReservationStatus.HELD:
        return StockCommitRejected(order_id=order_id, reason=f"reservation {status}")
    _move(writes, _COMMIT, order_id, lines, read=status, to=ReservationStatus.COMMITTED)
    return StockCommitted(order_id=order_id)


async def release_stock(tx: Tx, writes: Writes, *, order_id: uuid.UUID) -> Message:
    status, lines = await _reservation(tx, order_id)
    if status is None:
        _tombstone(writes, order_id, ReservationStatus.RELEASED)
    elif status == ReservationStatus.HELD:
        _move(writes, _RELEASE, order_id, lines, read=status, to=ReservationStatus.RELEASED)
    return StockReleased(order_id=order_id)


async def return_stock(tx: Tx, writes: Writes, *, order_id: uuid.UUID) -> Message:
    """Sold stock back on the shelf. Held stock (the sale had not happened yet: its command is
    late) is released instead, and the sale can no longer happen."""
    status, lines = await _reservation(tx, order_id)
    if status is None:
        _tombstone(writes, order_id, ReservationStatus.RETURNED)
    elif status == ReservationStatus.COMMITTED:
        _move(writes, _RETURN, order_id, lines, read=status, to=ReservationStatus.RETURNED)
    elif status == ReservationStatus.HELD:
        _move(writes, _RELEASE, order_id, lines, read=status, to=ReservationStatus.RETURNED)
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
        order_id = expired["order_id"]
        writes = Writes()
        _, lines = await _reservation(tx, order_id)
        held, to = ReservationStatus.HELD, ReservationStatus.EXPIRED
        _move(writes, _RELEASE, order_id, lines, read=held, to=to)
        await writes.run(tx)
        messages.append(ReservationExpired(order_id=order_id))
    return messages
