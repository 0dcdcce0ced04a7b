"""books: the year a book was published

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 05:34:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "inventory"


def upgrade() -> None:
    op.add_column("books", sa.Column("published_year", sa.Integer(), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("books", "published_year", schema=SCHEMA)
