"""guarded writes: the function a guard that no longer holds fails its statement with

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 02:00:00
"""

from collections.abc import Sequence

from bookstore_shared.migrations import create_concurrent_change, drop_concurrent_change

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "inventory"


def upgrade() -> None:
    create_concurrent_change(SCHEMA)


def downgrade() -> None:
    drop_concurrent_change(SCHEMA)
