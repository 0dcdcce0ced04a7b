"""Orders. Functions flush, never commit: the caller's unit of work does."""

import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bookstore_shared.columns import WholeNumber, utcnow
from bookstore_shared.db import Tx
from bookstore_shared.identity import Principal
from bookstore_shared.messages import Address
from bookstore_shared.pagination import PageParams
from sales import cart, saga, saga_store
from sales.errors import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    OrderNotCancellable,
    OrderNotFound,
)
from sales.models import (
    CancelReason,
    DeliveryState,
    IdempotencyKey,
    Order,
    OrderStatus,
    SagaState,
    SagaStep,
)
from sales.payments import CardDetails, CardProvider


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    book_id: uuid.UUID
    quantity: WholeNumber = Field(ge=1, le=100)


class ShippingAddress(Address):
    """The address as a client sends it: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class OrderCreate(BaseModel):
    """An order of `items`, or of the cart's books (`from_cart`, and the cart is emptied)."""

    model_config = ConfigDict(extra="forbid")

    items: list[OrderItem] = Field(default=None, min_length=1, max_length=50)
    from_cart: StrictBool = Field(
        default=False, description="Order the cart's books instead of items"
    )
    shipping_address: ShippingAddress
    payment: CardDetails

    @model_validator(mode="after")
    def _items_or_cart(self) -> "OrderCreate":
        if (self.items is None) == (not self.from_cart):
            raise ValueError("give either items or from_cart: true, not both")
        return self


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


async def place_order(
    tx: Tx,
    *,
    saga_run: saga_store.Saga,
    provider: CardProvider,
    customer: Principal,
    data: OrderCreate,
) -> saga_store.SagaOrder:
    """Create the order (pending) and start its saga; the card is exchanged for a token."""
    assert customer.user_id is not None
    if data.from_cart:
        lines = await cart.take(tx, customer.user_id)
    else:
        lines = [(item.book_id, item.quantity) for item in data.items]
    order = saga_store.SagaOrder.new(
        customer_id=customer.user_id,
        shipping_address=data.shipping_address.model_dump(mode="json"),
        card_last4=data.payment.last4,
        payment_token=provider.tokenize(data.payment),
        lines=lines,
    )
    await saga.start(saga_run, order)
    await saga_run.save(order)
    return order


async def cancel_order(
    tx: Tx, *, saga_run: saga_store.Saga, order_id: uuid.UUID, principal: Principal
) -> saga_store.SagaOrder:
    order = await saga_store.lock_order(tx, order_id)
    if order is None or not principal.can_see(order.customer_id):
        raise OrderNotFound(f"No order with id {order_id}.")
    if order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED) or order.delivery_state in (
        DeliveryState.DISPATCHED,
        DeliveryState.IN_TRANSIT,
        DeliveryState.DELIVERED,
    ):
        raise OrderNotCancellable(f"Order {order_id} has shipped.")
    if order.status == OrderStatus.CANCELLED or order.saga_state == SagaState.COMPENSATING:
        return order  # cancelled, or being cancelled, already
    await saga.fail(saga_run, order, CancelReason.CUSTOMER_CANCELLED)
    await saga_run.save(order)
    return order


async def get_saga_steps(
    session: AsyncSession, *, order_id: uuid.UUID, principal: Principal
) -> tuple[Order, list[SagaStep]]:
    order = await get_order(session, order_id=order_id, principal=principal)
    steps = await session.scalars(
        select(SagaStep)
        .where(SagaStep.order_id == order_id)  # type: ignore[arg-type]
        .order_by(SagaStep.sent_at, SagaStep.name)  # type: ignore[arg-type]
    )
    return order, list(steps.all())


def request_fingerprint(body: dict[str, Any], *, secret: str) -> str:
    """Keyed, so the stored fingerprint of a body that holds a card number reveals nothing."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


KEYS: Table = IdempotencyKey.__table__  # type: ignore[assignment]
_OF_KEY = (KEYS.c.customer_id == bindparam("customer"), KEYS.c.key == bindparam("idempotency_key"))
_CLAIM_KEY = (
    insert(KEYS)
    .values(
        customer_id=bindparam("customer"),
        key=bindparam("idempotency_key"),
        request_hash=bindparam("fingerprint"),
        created_at=bindparam("now"),
    )
    .on_conflict_do_nothing()
    .returning(KEYS.c.key)
)
_EARLIER = select(KEYS).where(*_OF_KEY)
_LINK_KEY = update(KEYS).where(*_OF_KEY).values(order_id=bindparam("order"))
_ANSWER_KEY = (
    update(KEYS)
    .where(*_OF_KEY)
    .values(
        order_id=bindparam("order"),
        response_status=bindparam("status"),
        response_body=bindparam("body", type_=KEYS.c.response_body.type),
    )
)


async def claim_idempotency_key(
    tx: Tx,
    *,
    customer_id: uuid.UUID,
    key: str,
    fingerprint: str,
    abandoned_after: timedelta,
) -> asyncpg.Record | None:
    """None if the key is new (now claimed); else the earlier request's record, if finished.

    A record with an order but no answer, older than any request may run, belongs to a request
    that died after creating its order: it is returned too (without an answer to replay)."""
    of_key = {"customer": customer_id, "idempotency_key": key}
    claimed = await tx.row(_CLAIM_KEY, of_key | {"fingerprint": fingerprint, "now": utcnow()})
    if claimed is not None:
        return None
    earlier = await tx.row(_EARLIER, of_key)
    assert earlier is not None
    if earlier["request_hash"] != fingerprint:
        raise IdempotencyKeyReused("This Idempotency-Key was used with a different request.")
    if earlier["response_status"] is None:
        if earlier["order_id"] is not None and earlier["created_at"] < utcnow() - abandoned_after:
            return earlier
        raise IdempotencyKeyInFlight("The first request with this key has not finished yet.")
    return earlier


async def link_idempotency_key(
    tx: Tx, *, customer_id: uuid.UUID, key: str, order_id: uuid.UUID
) -> None:
    """Note the order on the key in the transaction that creates it."""
    await tx.value(_LINK_KEY, {"customer": customer_id, "idempotency_key": key, "order": order_id})


async def record_idempotent_response(
    tx: Tx,
    *,
    customer_id: uuid.UUID,
    key: str,
    order_id: uuid.UUID,
    status: int,
    body: dict[str, Any],
) -> None:
    params = {"customer": customer_id, "idempotency_key": key, "order": order_id}
    await tx.value(_ANSWER_KEY, params | {"status": status, "body": body})
