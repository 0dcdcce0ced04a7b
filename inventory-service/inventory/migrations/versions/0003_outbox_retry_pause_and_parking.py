"""outbox: a growing pause between tries, and parking

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 17:38:02
"""

from collections.abc import Sequence

from bookstore_shared.migrations import add_outbox_retry_and_parking, drop_outbox_retry_and_parking

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "inventory"


def upgrade() -> None:
    add_outbox_retry_and_parking(SCHEMA)


def downgrade() -> None:
    drop_outbox_retry_and_parking(SCHEMA)
