"""order versions and guarded writes: each change of an order counts up its version, which the
saga's write checks against the version it read

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bookstore_shared.migrations import create_concurrent_change, drop_concurrent_change

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "sales"


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        schema=SCHEMA,
    )
    create_concurrent_change(SCHEMA)


def downgrade() -> None:
    drop_concurrent_change(SCHEMA)
    op.drop_column("orders", "version", schema=SCHEMA)
