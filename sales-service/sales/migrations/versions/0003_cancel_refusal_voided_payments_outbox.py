"""cancel refusal, voided payments, outbox parking

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
SCHEMA = "sales"


def upgrade() -> None:
    op.add_column(
        "orders", sa.Column("cancel_refusal", sa.String(length=200), nullable=True), schema=SCHEMA
    )
    op.drop_constraint("paymentstatus_known", "payments", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "paymentstatus_known",
        "payments",
        "status IN ('authorized', 'declined', 'refunded', 'voided')",
        schema=SCHEMA,
    )
    add_outbox_retry_and_parking(SCHEMA)


def downgrade() -> None:
    drop_outbox_retry_and_parking(SCHEMA)
    op.execute("DELETE FROM sales.payments WHERE status = 'voided'")
    op.drop_constraint("paymentstatus_known", "payments", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "paymentstatus_known",
        "payments",
        "status IN ('authorized', 'declined', 'refunded')",
        schema=SCHEMA,
    )
    op.drop_column("orders", "cancel_refusal", schema=SCHEMA)
