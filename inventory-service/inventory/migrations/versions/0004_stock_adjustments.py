"""stock adjustments: the ledger of staff changes to a book's stock

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "inventory"


def upgrade() -> None:
    op.create_table(
        "stock_adjustments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column(
            "reason",
            sa.Enum(
                "restock",
                "damaged",
                "lost",
                "found",
                "returned",
                "correction",
                name="adjustmentreason_known",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("actor", sa.Uuid(), nullable=False),
        sa.Column("available_after", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("delta <> 0", name="delta_not_zero"),
        sa.ForeignKeyConstraint(["book_id"], [f"{SCHEMA}.books.id"]),
        sa.PrimaryKeyConstraint("id"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_stock_adjustments_book_newest",
        "stock_adjustments",
        ["book_id", "created_at"],
        unique=False,
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_stock_adjustments_book_newest", table_name="stock_adjustments", schema=SCHEMA)
    op.drop_table("stock_adjustments", schema=SCHEMA)
