"""saga and messaging

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 07:29:21.024851
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
        schema="delivery",
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
        schema="delivery",
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["created_at"],
        unique=False,
        schema="delivery",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "tracking_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
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
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        schema="delivery",
    )
    op.create_index(
        op.f("ix_delivery_tracking_events_delivery_id"),
        "tracking_events",
        ["delivery_id"],
        unique=False,
        schema="delivery",
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_delivery_tracking_events_delivery_id"),
        table_name="tracking_events",
        schema="delivery",
    )
    op.drop_table("tracking_events", schema="delivery")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        schema="delivery",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox", schema="delivery")
    op.drop_table("inbox", schema="delivery")
