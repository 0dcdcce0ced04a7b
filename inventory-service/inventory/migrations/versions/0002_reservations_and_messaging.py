"""reservations and messaging

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 07:27:14.778897
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
        schema="inventory",
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
        schema="inventory",
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["created_at"],
        unique=False,
        schema="inventory",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "reservations",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "held",
                "committed",
                "released",
                "expired",
                "returned",
                name="reservationstatus_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
        schema="inventory",
    )
    op.create_index(
        "ix_reservations_held_expiry",
        "reservations",
        ["expires_at"],
        unique=False,
        schema="inventory",
        postgresql_where="status = 'held'",
    )
    op.create_table(
        "reservation_lines",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.ForeignKeyConstraint(
            ["book_id"],
            ["inventory.books.id"],
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["inventory.reservations.order_id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("order_id", "book_id"),
        schema="inventory",
    )


def downgrade() -> None:
    op.drop_table("reservation_lines", schema="inventory")
    op.drop_index(
        "ix_reservations_held_expiry",
        table_name="reservations",
        schema="inventory",
        postgresql_where="status = 'held'",
    )
    op.drop_table("reservations", schema="inventory")
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        schema="inventory",
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("outbox", schema="inventory")
    op.drop_table("inbox", schema="inventory")
