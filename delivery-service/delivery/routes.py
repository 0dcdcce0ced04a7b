import uuid

from fastapi import APIRouter

from bookstore_shared.db import SessionDep
from bookstore_shared.identity import CurrentUser
from bookstore_shared.pagination import Page, PageDep
from delivery import service
from delivery.models import DeliveryPublic

router = APIRouter(prefix="/deliveries", tags=["deliveries"])


@router.get("")
async def list_deliveries(
    session: SessionDep, user: CurrentUser, page: PageDep, order_id: uuid.UUID | None = None
) -> Page[DeliveryPublic]:
    """Your deliveries, optionally for one order (staff see everyone's)."""
    rows, count = await service.list_deliveries(
        session, principal=user, page=page, order_id=order_id
    )
    return Page(
        data=[DeliveryPublic.model_validate(d, from_attributes=True) for d in rows],
        count=count,
        page=page.page,
        size=page.size,
    )


@router.get("/{delivery_id}")
async def get_delivery(
    delivery_id: uuid.UUID, session: SessionDep, user: CurrentUser
) -> DeliveryPublic:
    """One of your deliveries and where it has got to (staff: any delivery)."""
    delivery = await service.get_delivery(session, delivery_id=delivery_id, principal=user)
    return DeliveryPublic.model_validate(delivery, from_attributes=True)
