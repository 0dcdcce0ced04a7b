import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, status
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import WithJsonSchema
from sqlalchemy import RowMapping, Table, func, select

from bookstore_shared.db import Database, SessionDep, Tx
from bookstore_shared.identity import CurrentUser
from bookstore_shared.pagination import Page, PageDep
from bookstore_shared.prefer import requested_wait
from sales import service
from sales.config import Settings
from sales.models import (
    OrderEvent,
    OrderEventPublic,
    OrderPublic,
    OrderStatus,
    SagaPublic,
    SagaState,
    SagaStepPublic,
)
from sales.saga_store import Saga, read_order
from sales.service import OrderCreate
from sales.watch import OrderWatch, Watcher

router = APIRouter(prefix="/orders", tags=["orders"])

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Repeat a POST safely: the same key and body give the same order",
    ),
]
PreferHeader = Annotated[
    str | None,
    Header(description="`wait=N` (RFC 7240): answer when the order is final, up to N seconds"),
]


def _saga(request: Request, tx: Tx) -> Saga:
    return Saga(tx, request.app.state.outbox, request.app.state.step_timeout)


async def _read_public(db: Database, order_id: uuid.UUID) -> tuple[OrderPublic, bool]:
    async with db.autocommit() as tx:  # one statement, the order with its lines
        order = await read_order(tx, order_id)
    assert order is not None
    return OrderPublic.of(order), order.saga_state == SagaState.COMPLETED


async def _wait_until_final(
    db: Database, watcher: Watcher, order_id: uuid.UUID, seconds: float
) -> tuple[OrderPublic, bool]:
    """Read the order whenever the watcher says it may be final, until it is or time is up.
    The watcher is registered before the order is committed, so no change can slip by and
    there is nothing to read before the first wake."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.final.wait(), max(0.0, deadline - loop.time()))
        watcher.final.clear()
        if watcher.order is not None:  # made final here: no need to read it back
            return watcher.order, True
        public, final = await _read_public(db, order_id)
        if final or loop.time() >= deadline:
            return public, final


async def _replay(db: Database, earlier: Mapping[str, Any]) -> JSONResponse:
    """The answer the first request with this Idempotency-Key gave (or, if it died before
    answering, the order as it is now)."""
    order_id = earlier["order_id"]
    assert order_id is not None
    body, code = earlier["response_body"], earlier["response_status"]
    if body is None:
        current, final = await _read_public(db, order_id)
        body = current.model_dump(mode="json")
        code = status.HTTP_201_CREATED if final else status.HTTP_202_ACCEPTED
    return JSONResponse(
        body,
        status_code=code or status.HTTP_202_ACCEPTED,
        headers={"Location": f"/api/orders/{order_id}", "Idempotent-Replayed": "true"},
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={201: {"model": OrderPublic, "description": "Final already (with Prefer: wait)"}},
)
async def place_order(
    data: OrderCreate,
    request: Request,
    user: CurrentUser,
    idempotency_key: IdempotencyKeyHeader = None,
    prefer: PreferHeader = None,
) -> JSONResponse:
    """Place an order: stock, payment and delivery follow; `Prefer: wait=N` waits for the end."""
    assert user.user_id is not None
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    fingerprint = service.request_fingerprint(
        data.model_dump(mode="json"), secret=settings.identity_secret.get_secret_value()
    )
    wait = requested_wait(prefer)
    # A plain order is one statement (`Saga.save`), atomic on its own; a key or a cart to
    # take from is read and written around it, in a transaction.
    work = db.transaction() if idempotency_key or data.from_cart else db.autocommit()
    with contextlib.ExitStack() as watching:
        async with work as tx:
            if idempotency_key:
                earlier = await service.claim_idempotency_key(
                    tx,
                    customer_id=user.user_id,
                    key=idempotency_key,
                    fingerprint=fingerprint,
                    # No request runs longer than its longest wait; a minute more is generous.
                    abandoned_after=timedelta(seconds=settings.order_wait_max_seconds + 60),
                )
                if earlier is not None:
                    return await _replay(db, earlier)
            order = await service.place_order(
                tx,
                saga_run=_saga(request, tx),
                provider=request.app.state.card_provider,
                customer=user,
                data=data,
            )
            order_id, public, final = order.id, OrderPublic.of(order), False
            if idempotency_key:
                await service.link_idempotency_key(
                    tx, customer_id=user.user_id, key=idempotency_key, order_id=order_id
                )
            if wait is not None:  # watched before the commit: no change of it can slip by
                watcher = watching.enter_context(request.app.state.watch.watching(order_id))

        headers = {"Location": f"/api/orders/{order_id}"}
        if wait is not None:
            seconds = min(float(wait), settings.order_wait_max_seconds)
            public, final = await _wait_until_final(db, watcher, order_id, seconds)
            headers["Preference-Applied"] = f"wait={wait}"
    code = status.HTTP_201_CREATED if final else status.HTTP_202_ACCEPTED
    body = public.model_dump(mode="json")
    if idempotency_key:
        async with db.autocommit() as tx:
            await service.record_idempotent_response(
                tx,
                customer_id=user.user_id,
                key=idempotency_key,
                order_id=order_id,
                status=code,
                body=body,
            )
    return JSONResponse(body, status_code=code, headers=headers)


@router.get("")
async def list_orders(
    session: SessionDep, user: CurrentUser, page: PageDep, status: OrderStatus | None = None
) -> Page[OrderPublic]:
    """Your orders, newest first (staff see everyone's)."""
    orders, count = await service.list_orders(session, principal=user, page=page, status=status)
    return Page(
        data=[OrderPublic.of(o) for o in orders], count=count, page=page.page, size=page.size
    )


# At most this many events a read; an account far behind gets them page after page.
EVENTS_PER_READ = 100
# A quiet stream says so this often: proxies (the gateway reads with a 10 s limit) keep it.
KEEP_ALIVE_SECONDS = 5.0
EVENTS: Table = OrderEvent.__table__  # type: ignore[assignment]
LastEventId = Annotated[
    int | None,
    Header(
        alias="Last-Event-ID",
        ge=0,
        description="Resume after this event (the `id` of the last one received)",
    ),
    # A header is a number here or absent: never `null`.
    WithJsonSchema({"type": "integer", "minimum": 0}),
]


def _of(customer_id: uuid.UUID | None) -> list[Any]:
    return [] if customer_id is None else [EVENTS.c.customer_id == customer_id]


async def _newest_event(db: Database, customer_id: uuid.UUID | None) -> int:
    async with db.reads() as session:
        newest = select(func.coalesce(func.max(EVENTS.c.id), 0)).where(*_of(customer_id))
        return int(await session.scalar(newest) or 0)


async def _events_after(
    db: Database, after: int, customer_id: uuid.UUID | None
) -> list[RowMapping]:
    """The events after `after` of one customer's orders (None: everyone's), oldest first."""
    async with db.reads() as session:
        rows = await session.execute(
            select(EVENTS)
            .where(EVENTS.c.id > after, *_of(customer_id))
            .order_by(EVENTS.c.id)
            .limit(EVENTS_PER_READ)
        )
        return list(rows.mappings().all())


@router.get("/events", response_class=EventSourceResponse)
async def account_events(
    request: Request, user: CurrentUser, last_event_id: LastEventId = None
) -> AsyncIterator[ServerSentEvent]:
    """Every status change of your orders (staff: of every order) as Server-Sent Events named
    `order`, from now on, or after `Last-Event-ID` when a client resumes (the `id` of each
    event). The first event, `ready`, says the stream is listening; a comment every 5 s keeps
    quiet connections open."""
    db: Database = request.app.state.db
    watch: OrderWatch = request.app.state.watch
    customer = None if user.is_staff else user.user_id
    with watch.watching_account(customer) as watcher:  # from here on nothing is missed
        after = last_event_id if last_event_id is not None else await _newest_event(db, customer)
        # Said once, first: from here on every change is sent (or the id to resume from).
        yield ServerSentEvent(event="ready", id=str(after), data={"last_event_id": after})
        while True:
            watcher.changed.clear()
            events = await _events_after(db, after, customer)
            for event in events:
                after = event["id"]
                yield ServerSentEvent(
                    event="order",
                    id=str(event["id"]),
                    data=OrderEventPublic.model_validate(dict(event)).model_dump(mode="json"),
                )
            if len(events) == EVENTS_PER_READ:
                continue  # more are waiting
            try:
                await asyncio.wait_for(watcher.changed.wait(), KEEP_ALIVE_SECONDS)
            except TimeoutError:
                yield ServerSentEvent(comment="keep-alive")


@router.get("/{order_id}")
async def get_order(order_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> OrderPublic:
    """One of your orders (staff: any order)."""
    return OrderPublic.of(await service.get_order(session, order_id=order_id, principal=user))


@router.get("/{order_id}/saga")
async def get_order_saga(order_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> SagaPublic:
    """The order's saga: every command sent, what came back and when, and what was undone."""
    order, steps = await service.get_saga_steps(session, order_id=order_id, principal=user)
    return SagaPublic(
        order_id=order.id,
        status=order.status,
        saga_state=order.saga_state,
        cancel_reason=order.cancel_reason,
        cancel_refusal=order.cancel_refusal,
        steps=[SagaStepPublic.model_validate(s, from_attributes=True) for s in steps],
    )


@router.post("/{order_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_order(order_id: uuid.UUID, request: Request, user: CurrentUser) -> OrderPublic:
    """Cancel an order that has not shipped: the payment is refunded and the stock put back."""
    db: Database = request.app.state.db
    async with db.transaction() as tx:
        order = await service.cancel_order(
            tx, saga_run=_saga(request, tx), order_id=order_id, principal=user
        )
    return OrderPublic.of(order)


async def _visible_order(order_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> uuid.UUID:
    return (await service.get_order(session, order_id=order_id, principal=user)).id


@router.get("/{order_id}/events", response_class=EventSourceResponse)
async def order_events(
    request: Request, order_id: Annotated[uuid.UUID, Depends(_visible_order)]
) -> AsyncIterator[ServerSentEvent]:
    """The order's status as Server-Sent Events, one per change, until the order is final."""
    db: Database = request.app.state.db
    watch: OrderWatch = request.app.state.watch
    last: tuple[Any, ...] | None = None
    with watch.watching(order_id) as watcher:
        while True:
            watcher.changed.clear()
            public, final = await _read_public(db, order_id)
            snapshot = (public.status, public.cancel_reason, final)
            if snapshot != last:
                last = snapshot
                yield ServerSentEvent(
                    event="status",
                    data=public.model_dump(mode="json"),
                    id=public.updated_at.isoformat(),
                )
            if final:
                return
            try:
                await asyncio.wait_for(watcher.changed.wait(), 5)
            except TimeoutError:
                yield ServerSentEvent(comment="keep-alive")
