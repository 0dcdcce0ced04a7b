"""order events: each change of an order's status, for an account's live updates

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "sales"


def upgrade() -> None:
    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "confirmed",
                "shipped",
                "delivered",
                "cancelled",
                name="orderstatus_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column(
            "cancel_reason",
            sa.Enum(
                "out_of_stock",
                "payment_declined",
                "insufficient_funds",
                "delivery_unavailable",
                "customer_cancelled",
                "delivery_failed",
                "expired",
                name="cancelreason_known",
                native_enum=False,
                create_constraint=True,
                length=40,
            ),
            nullable=True,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_order_events_customer",
        "order_events",
        ["customer_id", "id"],
        unique=False,
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_order_events_customer", table_name="order_events", schema=SCHEMA)
    op.drop_table("order_events", schema=SCHEMA)
