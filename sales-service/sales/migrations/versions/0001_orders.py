"""orders

Revision ID: 0001
Revises:
Create Date: 2026-11-21 07:19:25.666236
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), nullable=False),
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
        sa.Column("total_cents", sa.Integer(), nullable=False),
        sa.Column("shipping_address", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("card_last4", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("total_cents >= 0", name="total_not_negative"),
        sa.PrimaryKeyConstraint("id"),
        schema="sales",
    )
    op.create_index(
        "ix_orders_customer_created",
        "orders",
        ["customer_id", "created_at"],
        unique=False,
        schema="sales",
    )
    op.create_table(
        "order_lines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("unit_price_cents", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("unit_price_cents >= 0", name="price_not_negative"),
        sa.ForeignKeyConstraint(["order_id"], ["sales.orders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        schema="sales",
    )
    op.create_index(
        op.f("ix_sales_order_lines_order_id"),
        "order_lines",
        ["order_id"],
        unique=False,
        schema="sales",
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sales_order_lines_order_id"), table_name="order_lines", schema="sales")
    op.drop_table("order_lines", schema="sales")
    op.drop_index("ix_orders_customer_created", table_name="orders", schema="sales")
    op.drop_table("orders", schema="sales")
