"""Deliveries. Functions flush, never commit: the caller's unit of work does."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.columns import utcnow
from bookstore_shared.identity import Principal
from bookstore_shared.messages import (
    Address,
    DeliveryCancelled,
    DeliveryRejected,
    DeliveryScheduled,
    DeliveryStatusChanged,
    Message,
)
from bookstore_shared.pagination import PageParams
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
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    customer_id: uuid.UUID,
    address: Address,
    served_countries: frozenset[str],
) -> Message:
    existing = await session.scalar(select(Delivery).where(Delivery.order_id == order_id))
    if existing is not None:  # asked again: the same answer
        return DeliveryScheduled(order_id=order_id, delivery_id=existing.id)
    if address.country not in served_countries:
        return DeliveryRejected(order_id=order_id, reason=f"we do not deliver to {address.country}")
    delivery = Delivery(
        order_id=order_id, customer_id=customer_id, address=address.model_dump(mode="json")
    )
    session.add(delivery)
    await session.flush()
    _track(session, delivery, "scheduled")
    return DeliveryScheduled(order_id=order_id, delivery_id=delivery.id)


async def cancel_delivery(session: AsyncSession, *, order_id: uuid.UUID) -> Message:
    delivery = await session.scalar(
        select(Delivery).where(Delivery.order_id == order_id).with_for_update()
    )
    if delivery is None or delivery.status in (DeliveryStatus.SCHEDULED, DeliveryStatus.CANCELLED):
        if delivery is not None and delivery.status == DeliveryStatus.SCHEDULED:
            delivery.status = DeliveryStatus.CANCELLED
            _track(session, delivery, "cancelled with the order")
        return DeliveryCancelled(order_id=order_id)
    # On its way already: say where it is, and the order follows that instead.
    return DeliveryStatusChanged(
        order_id=order_id, delivery_id=delivery.id, status=delivery.status.value
    )  # type: ignore[arg-type]


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
