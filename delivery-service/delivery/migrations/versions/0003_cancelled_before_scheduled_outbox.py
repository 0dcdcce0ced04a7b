"""deliveries cancelled before they were scheduled, outbox parking

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 17:38:02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "delivery"


def upgrade() -> None:
    op.alter_column("deliveries", "customer_id", nullable=True, schema=SCHEMA)
    op.alter_column("deliveries", "address", nullable=True, schema=SCHEMA)
    op.add_column(
        "outbox",
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.add_column(
        "outbox", sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA
    )
    # Parked rows leave the poller's index.
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=SCHEMA)
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=SCHEMA)
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_column("outbox", "parked_at", schema=SCHEMA)
    op.drop_column("outbox", "next_attempt_at", schema=SCHEMA)
    op.execute("DELETE FROM delivery.deliveries WHERE customer_id IS NULL OR address IS NULL")
    op.alter_column("deliveries", "address", nullable=False, schema=SCHEMA)
    op.alter_column("deliveries", "customer_id", nullable=False, schema=SCHEMA)
