"""Sales reports for staff: what was sold, by period, and the best sellers.

An order counts once it is sold: confirmed, shipped or delivered; it counts in the period it was
placed in (UTC days). Read straight from the orders, so an order shows the moment it is
confirmed.
"""

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import Date, Table, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.db import SessionDep
from bookstore_shared.errors import DomainError
from bookstore_shared.identity import StaffUser
from sales.models import Order, OrderLine, OrderStatus

router = APIRouter(prefix="/reports", tags=["reports"])
ORDERS: Table = Order.__table__  # type: ignore[assignment]
LINES: Table = OrderLine.__table__  # type: ignore[assignment]
SOLD = (OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)
DEFAULT_DAYS = 30
GroupBy = Literal["day", "week", "month"]


class BadPeriod(DomainError):
    status, code, title = 422, "bad_period", "The period is not a valid range of dates"


class PeriodFigures(BaseModel):
    period: date
    orders: int
    units: int
    revenue_cents: int


class SalesSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: date = Field(alias="from")
    to: date
    orders: int
    units: int
    revenue_cents: int
    cancelled: int
    by_period: list[PeriodFigures]


class TopSeller(BaseModel):
    book_id: uuid.UUID
    title: str | None
    units: int
    revenue_cents: int


def _period(start: date | None, end: date | None) -> tuple[date, date]:
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise BadPeriod(f"`from` ({start}) is after `to` ({end}).")
    return start, end


def _placed_within(start: date, end: date) -> object:
    return and_(
        ORDERS.c.created_at >= datetime.combine(start, time.min, UTC),
        ORDERS.c.created_at < datetime.combine(end + timedelta(days=1), time.min, UTC),
    )


def _iso_date(value: object) -> object:
    """Only YYYY-MM-DD (pydantic would also take a number of seconds since 1970)."""
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a date is written YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
From = Annotated[IsoDate | None, Query(alias="from", description="First day (UTC), YYYY-MM-DD")]
To = Annotated[IsoDate | None, Query(description="Last day (UTC), YYYY-MM-DD; default today")]


async def sales_summary(
    session: AsyncSession, *, start: date, end: date, group_by: GroupBy
) -> SalesSummary:
    placed = _placed_within(start, end)
    sold = ORDERS.c.status.in_(SOLD)
    units = (
        select(LINES.c.order_id, func.sum(LINES.c.quantity).label("units"))
        .group_by(LINES.c.order_id)
        .subquery()
    )
    period = cast(func.date_trunc(group_by, func.timezone("UTC", ORDERS.c.created_at)), Date)
    rows = (
        await session.execute(
            select(
                period.label("period"),
                func.count().label("orders"),
                func.coalesce(func.sum(units.c.units), 0).label("units"),
                func.coalesce(func.sum(ORDERS.c.total_cents), 0).label("revenue_cents"),
            )
            .select_from(ORDERS.join(units, units.c.order_id == ORDERS.c.id))
            .where(placed, sold)
            .group_by(period)
            .order_by(period)
        )
    ).mappings()
    by_period = [PeriodFigures.model_validate(dict(r)) for r in rows]
    cancelled = await session.scalar(
        select(func.count()).where(placed, ORDERS.c.status == OrderStatus.CANCELLED)
    )
    return SalesSummary(
        from_=start,
        to=end,
        orders=sum(p.orders for p in by_period),
        units=sum(p.units for p in by_period),
        revenue_cents=sum(p.revenue_cents for p in by_period),
        cancelled=cancelled or 0,
        by_period=by_period,
    )


async def top_sellers(
    session: AsyncSession, *, start: date, end: date, limit: int
) -> list[TopSeller]:
    units = func.sum(LINES.c.quantity)
    rows = (
        await session.execute(
            select(
                LINES.c.book_id,
                func.max(LINES.c.title).label("title"),
                units.label("units"),
                func.coalesce(func.sum(LINES.c.quantity * LINES.c.unit_price_cents), 0).label(
                    "revenue_cents"
                ),
            )
            .select_from(LINES.join(ORDERS, ORDERS.c.id == LINES.c.order_id))
            .where(_placed_within(start, end), ORDERS.c.status.in_(SOLD))
            .group_by(LINES.c.book_id)
            .order_by(units.desc(), LINES.c.book_id)
            .limit(limit)
        )
    ).mappings()
    return [TopSeller.model_validate(dict(r)) for r in rows]


@router.get("/sales-summary")
async def get_sales_summary(
    session: SessionDep,
    staff: StaffUser,
    start: From = None,
    to: To = None,
    group_by: GroupBy = "day",
) -> SalesSummary:
    """Orders sold, copies, revenue and cancellations over a period (default the last 30
    days), with the figures of each day, week or month in it (staff)."""
    first, last = _period(start, to)
    return await sales_summary(session, start=first, end=last, group_by=group_by)


@router.get("/top-sellers")
async def get_top_sellers(
    session: SessionDep,
    staff: StaffUser,
    start: From = None,
    to: To = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[TopSeller]:
    """The books that sold the most copies over a period (default the last 30 days) (staff)."""
    first, last = _period(start, to)
    return await top_sellers(session, start=first, end=last, limit=limit)
