"""Order queries. They flush, never commit: the caller's unit of work does."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bookstore_shared.identity import Principal
from bookstore_shared.pagination import PageParams
from sales.errors import OrderNotFound
from sales.models import Order, OrderStatus


async def get_order(session: AsyncSession, *, order_id: uuid.UUID, principal: Principal) -> Order:
    order = await session.scalar(
        select(Order).where(Order.id == order_id).options(selectinload(Order.lines))  # type: ignore[arg-type]
    )
    # Someone else's order answers exactly like a missing one: ids are not probed.
    if order is None or not principal.can_see(order.customer_id):
        raise OrderNotFound(f"No order with id {order_id}.")
    return order


async def list_orders(
    session: AsyncSession,
    *,
    principal: Principal,
    page: PageParams,
    status: OrderStatus | None = None,
) -> tuple[list[Order], int]:
    query = select(Order)
    if not principal.is_staff:
        query = query.where(Order.customer_id == principal.user_id)
    if status is not None:
        query = query.where(Order.status == status)
    count = await session.scalar(select(func.count()).select_from(query.subquery()))
    orders = await session.scalars(
        query.options(selectinload(Order.lines))  # type: ignore[arg-type]
        .order_by(Order.created_at.desc(), Order.id)  # type: ignore[attr-defined]
        .offset(page.offset)
        .limit(page.size)
    )
    return list(orders.all()), count or 0
