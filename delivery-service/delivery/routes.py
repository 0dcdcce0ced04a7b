import uuid

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.db import SessionDep
from bookstore_shared.identity import CurrentUser, StaffUser
from bookstore_shared.pagination import Page, PageDep
from delivery import service
from delivery.models import Delivery, DeliveryPublic, DeliveryStatus, StatusChange

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
        data=[await _public(session, d) for d in rows],
        count=count,
        page=page.page,
        size=page.size,
    )


async def _public(session: AsyncSession, delivery: Delivery) -> DeliveryPublic:
    tracking = await service.tracking_of(session, delivery_id=delivery.id)
    return DeliveryPublic.model_validate(
        {**delivery.model_dump(), "tracking": [t.model_dump() for t in tracking]}
    )


@router.get("/{delivery_id}")
async def get_delivery(
    delivery_id: uuid.UUID, session: SessionDep, user: CurrentUser
) -> DeliveryPublic:
    """One of your deliveries and where it has got to (staff: any delivery)."""
    delivery = await service.get_delivery(session, delivery_id=delivery_id, principal=user)
    return await _public(session, delivery)


@router.post("/{delivery_id}/status")
async def change_delivery_status(
    delivery_id: uuid.UUID,
    change: StatusChange,
    request: Request,
    session: SessionDep,
    staff: StaffUser,
) -> DeliveryPublic:
    """Move a delivery on: dispatched, in transit, delivered, or failed (staff)."""
    delivery, event = await service.change_status(
        session, delivery_id=delivery_id, status=DeliveryStatus(change.status), note=change.note
    )
    await request.app.state.outbox.add(session, event)
    return await _public(session, delivery)
