"""deliveries

Revision ID: 0001
Revises:
Create Date: 2026-11-21 07:19:27.209332
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "scheduled",
                "dispatched",
                "in_transit",
                "delivered",
                "failed",
                "cancelled",
                name="deliverystatus_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("address", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id"),
        schema="delivery",
    )
    op.create_index(
        op.f("ix_delivery_deliveries_customer_id"),
        "deliveries",
        ["customer_id"],
        unique=False,
        schema="delivery",
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_delivery_deliveries_customer_id"), table_name="deliveries", schema="delivery"
    )
    op.drop_table("deliveries", schema="delivery")
