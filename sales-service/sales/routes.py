import uuid

from fastapi import APIRouter

from bookstore_shared.db import SessionDep
from bookstore_shared.identity import CurrentUser
from bookstore_shared.pagination import Page, PageDep
from sales import service
from sales.models import OrderPublic, OrderStatus

router = APIRouter(prefix="/orders", tags=["orders"])


@router.get("")
async def list_orders(
    session: SessionDep, user: CurrentUser, page: PageDep, status: OrderStatus | None = None
) -> Page[OrderPublic]:
    """Your orders, newest first (staff see everyone's)."""
    orders, count = await service.list_orders(session, principal=user, page=page, status=status)
    return Page(
        data=[OrderPublic.of(o) for o in orders], count=count, page=page.page, size=page.size
    )


@router.get("/{order_id}")
async def get_order(order_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> OrderPublic:
    """One of your orders (staff: any order)."""
    return OrderPublic.of(await service.get_order(session, order_id=order_id, principal=user))
