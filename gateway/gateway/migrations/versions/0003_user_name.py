"""users: a name the account gives itself

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "gateway"


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("users", "name", schema=SCHEMA)
