"""Delivery queries. They flush, never commit: the caller's unit of work does."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.identity import Principal
from bookstore_shared.pagination import PageParams
from delivery.errors import DeliveryNotFound
from delivery.models import Delivery


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
