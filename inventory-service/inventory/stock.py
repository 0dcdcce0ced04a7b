"""Stock movements for orders: reserve, commit, release, return, expire.

Every movement locks the books it touches in one fixed order (by id) before changing them, so
two orders over the same books never deadlock, and the CHECK constraints on the counts make
going below zero impossible whatever the code does. For every book, at every moment:
stock taken in = available + reserved + sold.
"""

import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.columns import utcnow
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
from inventory.models import Book, Reservation, ReservationLine, ReservationStatus


async def _lock_books(session: AsyncSession, book_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Row]:  # type: ignore[type-arg]
    rows = await session.execute(
        select(Book.id, Book.title, Book.price_cents, Book.available, Book.deleted_at)
        .where(Book.id.in_(sorted(set(book_ids))))  # type: ignore[attr-defined]
        .order_by(Book.id)
        .with_for_update()
    )
    return {row.id: row for row in rows}


async def _lines(session: AsyncSession, order_id: uuid.UUID) -> list[ReservationLine]:
    return list(
        (
            await session.scalars(
                select(ReservationLine).where(ReservationLine.order_id == order_id)
            )
        ).all()
    )


def _priced(lines: list[ReservationLine], titles: dict[uuid.UUID, str]) -> list[PricedLine]:
    return [
        PricedLine(
            book_id=line.book_id,
            quantity=line.quantity,
            title=titles.get(line.book_id, ""),
            unit_price_cents=line.unit_price_cents,
        )
        for line in lines
    ]


async def _move(session: AsyncSession, lines: list[ReservationLine], **deltas: int) -> None:
    """Apply `field: sign` to each line's book, e.g. reserved=-1, sold=+1; locks first."""
    await _lock_books(session, (line.book_id for line in lines))
    for line in sorted(lines, key=lambda line: line.book_id):
        await session.execute(
            update(Book)
            .where(Book.id == line.book_id)  # type: ignore[arg-type]
            .values(
                {name: getattr(Book, name) + sign * line.quantity for name, sign in deltas.items()}
                | {"updated_at": utcnow()}
            )
        )


async def reserve_stock(
    session: AsyncSession, *, order_id: uuid.UUID, lines: list[Line], lease: timedelta
) -> Message:
    """All or nothing: every line is set aside, or none is and the short ones are named."""
    existing = await session.get(Reservation, order_id, with_for_update=True)
    if existing is not None:  # the same order asked again (a retried command): same answer
        return await _answer_for_existing(session, existing)

    wanted = Counter[uuid.UUID]()
    for line in lines:
        wanted[line.book_id] += line.quantity
    books = await _lock_books(session, wanted)
    short = [
        ShortLine(
            book_id=book_id,
            requested=quantity,
            available=books[book_id].available if book_id in books else 0,
        )
        for book_id, quantity in sorted(wanted.items())
        if book_id not in books
        or books[book_id].deleted_at is not None
        or books[book_id].available < quantity
    ]
    if short:
        return StockRejected(order_id=order_id, short=short)

    for book_id, quantity in sorted(wanted.items()):
        moved = await session.execute(
            update(Book)
            .where(Book.id == book_id, Book.available >= quantity)  # type: ignore[arg-type]
            .values(
                available=Book.available - quantity,
                reserved=Book.reserved + quantity,
                updated_at=utcnow(),
            )
        )
        assert moved.rowcount == 1, "row was locked and checked above"  # type: ignore[attr-defined]

    reservation = Reservation(order_id=order_id, expires_at=utcnow() + lease)
    reserved_lines = [
        ReservationLine(
            order_id=order_id,
            book_id=book_id,
            quantity=quantity,
            unit_price_cents=books[book_id].price_cents,
        )
        for book_id, quantity in sorted(wanted.items())
    ]
    session.add(reservation)
    await session.flush()
    session.add_all(reserved_lines)
    await session.flush()
    return StockReserved(
        order_id=order_id,
        lines=_priced(reserved_lines, {b: row.title for b, row in books.items()}),
        expires_at=reservation.expires_at,
    )


async def _answer_for_existing(session: AsyncSession, reservation: Reservation) -> Message:
    if reservation.status in (ReservationStatus.HELD, ReservationStatus.COMMITTED):
        lines = await _lines(session, reservation.order_id)
        titles = dict(
            (
                await session.execute(
                    select(Book.id, Book.title).where(Book.id.in_([x.book_id for x in lines]))  # type: ignore[attr-defined]
                )
            )
            .tuples()
            .all()
        )
        return StockReserved(
            order_id=reservation.order_id,
            lines=_priced(lines, titles),
            expires_at=reservation.expires_at,
        )
    return ReservationExpired(order_id=reservation.order_id)


async def commit_stock(session: AsyncSession, *, order_id: uuid.UUID) -> Message:
    reservation = await session.get(Reservation, order_id, with_for_update=True)
    if reservation is None:
        return StockCommitRejected(order_id=order_id, reason="no reservation for this order")
    if reservation.status == ReservationStatus.COMMITTED:
        return StockCommitted(order_id=order_id)
    if reservation.status != ReservationStatus.HELD:
        return StockCommitRejected(order_id=order_id, reason=f"reservation {reservation.status}")
    await _move(session, await _lines(session, order_id), reserved=-1, sold=+1)
    reservation.status, reservation.updated_at = ReservationStatus.COMMITTED, utcnow()
    return StockCommitted(order_id=order_id)


async def release_stock(session: AsyncSession, *, order_id: uuid.UUID) -> Message:
    reservation = await session.get(Reservation, order_id, with_for_update=True)
    if reservation is not None and reservation.status == ReservationStatus.HELD:
        await _move(session, await _lines(session, order_id), reserved=-1, available=+1)
        reservation.status, reservation.updated_at = ReservationStatus.RELEASED, utcnow()
    return StockReleased(order_id=order_id)


async def return_stock(session: AsyncSession, *, order_id: uuid.UUID) -> Message:
    reservation = await session.get(Reservation, order_id, with_for_update=True)
    if reservation is not None and reservation.status == ReservationStatus.COMMITTED:
        await _move(session, await _lines(session, order_id), sold=-1, available=+1)
        reservation.status, reservation.updated_at = ReservationStatus.RETURNED, utcnow()
    return StockReturned(order_id=order_id)


async def expire_reservations(session: AsyncSession, *, limit: int = 100) -> list[Message]:
    """Release held stock whose lease has run out; replicas share the work (SKIP LOCKED)."""
    expired = (
        await session.scalars(
            select(Reservation)
            .where(Reservation.status == ReservationStatus.HELD, Reservation.expires_at < utcnow())  # type: ignore[arg-type]
            .order_by(Reservation.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    messages: list[Message] = []
    for reservation in expired:
        await _move(session, await _lines(session, reservation.order_id), reserved=-1, available=+1)
        reservation.status, reservation.updated_at = ReservationStatus.EXPIRED, utcnow()
        messages.append(ReservationExpired(order_id=reservation.order_id))
    return messages
