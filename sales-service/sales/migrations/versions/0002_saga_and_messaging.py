"""saga and messaging

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 07:29:16.684659
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "key"),
        schema="sales",
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("consumer", "message_id"),
        schema="sales",
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("correlation_id", sa.Uuid(), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="sales",
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["created_at"],
        unique=False,
        schema="sales",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "authorized",
                "declined",
                "refunded",
                name="paymentstatus_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column(
            "provider_reference", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True
        ),
        sa.Column("decline_reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("refunded_cents", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id"),
        schema="sales",
    )
    op.create_table(
        "saga_steps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "action",
                "compensation",
                name="stepkind_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "sent",
                "succeeded",
                "failed",
                "timed_out",
                name="stepstatus_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("command_type", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("command", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("command_message_id", sa.Uuid(), nullable=False),
        sa.Column("reply_type", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("reply_message_id", sa.Uuid(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["sales.orders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        schema="sales",
    )
    op.create_index(
        "ix_saga_steps_open_deadline",
        "saga_steps",
        ["deadline_at"],
        unique=False,
        schema="sales",
        postgresql_where="status = 'sent'",
    )
    op.create_index(
        op.f("ix_sales_saga_steps_order_id"),
        "saga_steps",
        ["order_id"],
        unique=False,
        schema="sales",
    )
    op.alter_column(
        "order_lines", "title", existing_type=sa.VARCHAR(length=300), nullable=True, schema="sales"
    )
    op.alter_column(
        "order_lines", "unit_price_cents", existing_type=sa.INTEGER(), nullable=True, schema="sales"
    )
    op.add_column(
        "orders",
        sa.Column("cancel_details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="sales",
    )
    op.add_column(
        "orders",
        sa.Column("payment_token", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        schema="sales",
    )
    op.add_column(
        "orders",
        sa.Column(
            "saga_state",
            sa.Enum(
                "running",
                "compensating",
                "completed",
                name="sagastate_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
            server_default="completed",
        ),
        schema="sales",
    )
    op.add_column(
        "orders",
        sa.Column(
            "stock_state",
            sa.Enum(
                "none",
                "requested",
                "held",
                "rejected",
                "committing",
                "committed",
                "releasing",
                "released",
                "returning",
                "returned",
                name="stockstate_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
            server_default="none",
        ),
        schema="sales",
    )
    op.add_column(
        "orders",
        sa.Column(
            "payment_state",
            sa.Enum(
                "none",
                "requested",
                "authorized",
                "declined",
                "refunding",
                "refunded",
                name="paymentstate_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
            server_default="none",
        ),
        schema="sales",
    )
    op.add_column(
        "orders",
        sa.Column(
            "delivery_state",
            sa.Enum(
                "none",
                "requested",
                "scheduled",
                "rejected",
                "cancelling",
                "cancelled",
                "dispatched",
                "in_transit",
                "delivered",
                "failed",
                name="deliverystate_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
            server_default="none",
        ),
        schema="sales",
    )
    op.add_column("orders", sa.Column("payment_id", sa.Uuid(), nullable=True), schema="sales")
    op.add_column("orders", sa.Column("delivery_id", sa.Uuid(), nullable=True), schema="sales")
    op.alter_column(
        "orders", "total_cents", existing_type=sa.INTEGER(), nullable=True, schema="sales"
    )


def downgrade() -> None:
    op.alter_column(
        "orders", "total_cents", existing_type=sa.INTEGER(), nullable=False, schema="sales"
    )
    op.drop_column("orders", "delivery_id", schema="sales")
    op.drop_column("orders", "payment_id", schema="sales")
    op.drop_column("orders", "delivery_state", schema="sales")
    op.drop_column("orders", "payment_state", schema="sales")
    op.drop_column("orders", "stock_state", schema="sales")
    op.drop_column("orders", "saga_state", schema="sales")
    op.drop_column("orders", "payment_token", schema="sales")
    op.drop_column("orders", "cancel_details", schema="sales")
    op.alter_column(
        "order_lines",
        "unit_price_cents",
        existing_type=sa.INTEGER(),
        nullable=False,
        schema="sales",
    )
    op.alter_column(
        "order_lines", "title", existing_type=sa.VARCHAR(length=300), nullable=False, schema="sales"
    )
    op.drop_index(op.f("ix_sales_saga_steps_order_id"), table_name="saga_steps", schema="sales")
    op.drop_index(
        "ix_saga_steps_open_deadline",
        table_name="saga_steps",
        schema="sales",
        postgresql_where="status = 'sent'",
    )
    op.drop_table("saga_steps", schema="sales")
    op.drop_table("payments", schema="sales")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        schema="sales",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox", schema="sales")
    op.drop_table("inbox", schema="sales")
    op.drop_table("idempotency_keys", schema="sales")
