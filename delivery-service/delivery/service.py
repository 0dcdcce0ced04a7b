"""Deliveries. Functions flush, never commit: the caller's unit of work does."""

import uuid
from datetime import datetime

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.columns import utcnow
from bookstore_shared.db import Tx
from bookstore_shared.identity import Principal
from bookstore_shared.messages import (
    Address,
    DeliveryCancelled,
    DeliveryCancelRefused,
    DeliveryRejected,
    DeliveryScheduled,
    DeliveryStatusChanged,
    Message,
)
from bookstore_shared.pagination import PageParams
from bookstore_shared.writes import Writes, insert_row, row
from delivery.errors import DeliveryNotFound, InvalidStatusChange
from delivery.models import NEXT_STATUS, Delivery, DeliveryStatus, TrackingEvent


async def get_delivery(
    session: AsyncSession, *, delivery_id: uuid.UUID, principal: Principal
) -> Delivery:
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None or not principal.can_see(delivery.customer_id):
        raise DeliveryNotFound(f"No delivery with id {delivery_id}.")
    return delivery


async def list_deliveries(
    session: AsyncSession,
    *,
    principal: Principal,
    page: PageParams,
    order_id: uuid.UUID | None = None,
) -> tuple[list[Delivery], int]:
    query = select(Delivery)
    if not principal.is_staff:
        query = query.where(Delivery.customer_id == principal.user_id)
    if order_id is not None:
        query = query.where(Delivery.order_id == order_id)
    count = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(Delivery.created_at.desc(), Delivery.id)  # type: ignore[attr-defined]
        .offset(page.offset)
        .limit(page.size)
    )
    return list(rows.all()), count or 0


async def tracking_of(session: AsyncSession, *, delivery_id: uuid.UUID) -> list[TrackingEvent]:
    rows = await session.scalars(
        select(TrackingEvent)
        .where(TrackingEvent.delivery_id == delivery_id)  # type: ignore[arg-type]
        .order_by(TrackingEvent.occurred_at)  # type: ignore[arg-type]
    )
    return list(rows.all())


def _track(session: AsyncSession, delivery: Delivery, note: str | None = None) -> None:
    delivery.updated_at = utcnow()
    session.add(TrackingEvent(delivery_id=delivery.id, status=delivery.status, note=note))


async def schedule_delivery(
    tx: Tx,
    writes: Writes,
    *,
    order_id: uuid.UUID,
    customer_id: uuid.UUID,
    address: Address,
    served_countries: frozenset[str],
) -> Message:
    """Once per order: one read, then the delivery and its first tracking event go with the
    caller's other `writes` (one delivery an order: a second one, written meanwhile, fails
    the write, and the message is handled again)."""
    existing = await tx.row(_DELIVERY_OF_ORDER, {"order": order_id})
    if existing is not None and existing["status"] == DeliveryStatus.CANCELLED:
        # Cancelled first (this command came late): it stays cancelled.
        return DeliveryRejected(order_id=order_id, reason="the order's delivery was cancelled")
    if existing is not None:  # asked again: the same answer
        return DeliveryScheduled(order_id=order_id, delivery_id=existing["id"])
    if address.country not in served_countries:
        return DeliveryRejected(order_id=order_id, reason=f"we do not deliver to {address.country}")
    delivery_id, now = uuid.uuid4(), utcnow()
    delivery = {
        "id": delivery_id,
        "order_id": order_id,
        "customer_id": customer_id,
        "status": DeliveryStatus.SCHEDULED,
        "address": address.model_dump(mode="json"),
        "created_at": now,
        "updated_at": now,
    }
    writes.add(_INSERT_DELIVERY, row("delivery", delivery))
    _tracking(writes, delivery_id, DeliveryStatus.SCHEDULED, "scheduled", now)
    return DeliveryScheduled(order_id=order_id, delivery_id=delivery_id)


def _tracking(
    writes: Writes, delivery_id: uuid.UUID, status: DeliveryStatus, note: str, now: datetime
) -> None:
    """The delivery's tracking event, written with the caller's other `writes`."""
    event = {
        "id": uuid.uuid4(),
        "delivery_id": delivery_id,
        "status": status,
        "note": note,
        "occurred_at": now,
    }
    writes.add(_INSERT_TRACKING, row("tracking", event))


DELIVERIES: Table = Delivery.__table__  # type: ignore[assignment]
_DELIVERY_OF_ORDER = select(DELIVERIES.c.id, DELIVERIES.c.status).where(
    DELIVERIES.c.order_id == bindparam("order")
)
_INSERT_DELIVERY = insert_row(DELIVERIES, "delivery")
_INSERT_TRACKING = insert_row(TrackingEvent.__table__, "tracking")  # type: ignore[arg-type]
_CANCEL = (  # the guard of a cancel: the parcel is still only scheduled, as it was read
    update(DELIVERIES)
    .where(
        DELIVERIES.c.id == bindparam("delivery"), DELIVERIES.c.status == DeliveryStatus.SCHEDULED
    )
    .values(status=DeliveryStatus.CANCELLED, updated_at=bindparam("now"))
    .returning(DELIVERIES.c.id)
)
_LEFT = (DeliveryStatus.DISPATCHED, DeliveryStatus.IN_TRANSIT, DeliveryStatus.DELIVERED)


async def cancel_delivery(
    tx: Tx,
    writes: Writes,
    *,
    order_id: uuid.UUID,
    customer_id: uuid.UUID | None,
    address: Address | None,
) -> Message:
    """Cancel the order's delivery unless the parcel has left; then the cancel is refused."""
    delivery, now = await tx.row(_DELIVERY_OF_ORDER, {"order": order_id}), utcnow()
    if delivery is None:
        # Nothing scheduled yet (its command is late, or lost): a cancelled delivery is kept,
        # so that the schedule command, should it come, is refused and never applied.
        delivery_id = uuid.uuid4()
        cancelled = {
            "id": delivery_id,
            "order_id": order_id,
            "customer_id": customer_id,
            "status": DeliveryStatus.CANCELLED,
            "address": address.model_dump(mode="json") if address else None,
            "created_at": now,
            "updated_at": now,
        }
        writes.add(_INSERT_DELIVERY, row("delivery", cancelled))
        note = "cancelled before it was scheduled"
        _tracking(writes, delivery_id, DeliveryStatus.CANCELLED, note, now)
    elif delivery["status"] == DeliveryStatus.SCHEDULED:
        writes.guard(_CANCEL, {"delivery": delivery["id"], "now": now})
        _tracking(writes, delivery["id"], DeliveryStatus.CANCELLED, "cancelled with the order", now)
    elif delivery["status"] in _LEFT:
        return DeliveryCancelRefused(
            order_id=order_id, delivery_id=delivery["id"], status=delivery["status"]
        )
    # Cancelled now or before, or failed on the way: either way nothing will be delivered.
    return DeliveryCancelled(order_id=order_id)


async def change_status(
    session: AsyncSession, *, delivery_id: uuid.UUID, status: DeliveryStatus, note: str | None
) -> tuple[Delivery, Message]:
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise DeliveryNotFound(f"No delivery with id {delivery_id}.")
    if status not in NEXT_STATUS.get(delivery.status, frozenset()):
        raise InvalidStatusChange(
            f"A {delivery.status.value} delivery cannot become {status.value}."
        )
    delivery.status = status
    _track(session, delivery, note)
    changed = DeliveryStatusChanged(
        order_id=delivery.order_id, delivery_id=delivery.id, status=status.value
    )  # type: ignore[arg-type]
    return delivery, changed
