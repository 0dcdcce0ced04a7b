"""deliveries cancelled before they were scheduled, outbox parking

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 17:38:02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bookstore_shared.migrations import add_outbox_retry_and_parking, drop_outbox_retry_and_parking

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "delivery"


def upgrade() -> None:
    op.alter_column("deliveries", "customer_id", nullable=True, schema=SCHEMA)
    op.alter_column("deliveries", "address", nullable=True, schema=SCHEMA)
    add_outbox_retry_and_parking(SCHEMA)


def downgrade() -> None:
    drop_outbox_retry_and_parking(SCHEMA)
    op.execute("DELETE FROM delivery.deliveries WHERE customer_id IS NULL OR address IS NULL")
    op.alter_column("deliveries", "address", nullable=False, schema=SCHEMA)
    op.alter_column("deliveries", "customer_id", nullable=False, schema=SCHEMA)
