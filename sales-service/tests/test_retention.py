"""What sales prunes: old Idempotency-Keys, old order events, and the steps of sagas finished
long ago."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bookstore_shared.columns import utcnow
from bookstore_shared.db import Database
from bookstore_shared.retention import prune
from bookstore_testing.harness import SAMPLE_ADDRESS
from sales.config import Settings
from sales.main import retention
from sales.models import IdempotencyKey, Order, OrderEvent, OrderStatus, SagaState, SagaStep


def _step(order_id: uuid.UUID, answered_days_ago: float | None) -> SagaStep:
    answered = utcnow() - timedelta(days=answered_days_ago) if answered_days_ago else None
    return SagaStep(
        order_id=order_id,
        name="reserve_stock",
        command_type="ReserveStock",
        command={},
        command_message_id=uuid.uuid4(),
        deadline_at=utcnow(),
        status="succeeded" if answered else "sent",
        answered_at=answered,
    )


@pytest.mark.usefixtures("client")  # the app's schema, migrated
async def test_prune_keeps_live_history_and_drops_the_old(service_settings: dict[str, Any]) -> None:
    settings = Settings(**service_settings)
    db = Database(settings.database_url, pool_size=1)
    finished = Order(
        customer_id=uuid.uuid4(), shipping_address=SAMPLE_ADDRESS, saga_state=SagaState.COMPLETED
    )
    running = Order(customer_id=uuid.uuid4(), shipping_address=SAMPLE_ADDRESS)
    try:
        async with db.unit_of_work() as session:
            session.add_all([finished, running])
            await session.flush()
            session.add_all(
                [
                    _step(finished.id, answered_days_ago=40),  # pruned
                    _step(finished.id, answered_days_ago=2),  # kept: recent
                    _step(running.id, answered_days_ago=40),  # kept: its saga still runs
                    _step(running.id, answered_days_ago=None),  # kept: not answered
                    IdempotencyKey(
                        customer_id=uuid.uuid4(),
                        key="old",
                        request_hash="x",
                        created_at=utcnow() - timedelta(hours=25),
                    ),
                    IdempotencyKey(customer_id=uuid.uuid4(), key="new", request_hash="x"),
                    *(
                        OrderEvent(
                            order_id=running.id,
                            customer_id=running.customer_id,
                            status=OrderStatus.PENDING,
                            occurred_at=utcnow() - timedelta(days=days),
                        )
                        for days in (8, 1)  # the first is pruned
                    ),
                ]
            )
        removed = await prune(db, retention(settings))
        async with db.unit_of_work() as session:
            keys = (await session.scalars(select(IdempotencyKey.key))).all()
            steps = await session.scalar(select(func.count()).select_from(SagaStep))
            events = await session.scalar(select(func.count()).select_from(OrderEvent))
    finally:
        await db.dispose()
    assert removed == {"sales.idempotency_keys": 1, "sales.order_events": 1, "sales.saga_steps": 1}
    assert events == 1
    assert list(keys) == ["new"]
    assert steps == 3
