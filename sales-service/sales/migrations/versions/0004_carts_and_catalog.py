"""carts, and the catalog as sales keeps it for them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "sales"


def upgrade() -> None:
    op.create_table(
        "catalog_books",
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("book_id"),
        schema=SCHEMA,
    )
    op.create_table(
        "carts",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("customer_id"),
        schema=SCHEMA,
    )
    op.create_table(
        "cart_items",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity BETWEEN 1 AND 100", name="quantity_in_range"),
        sa.ForeignKeyConstraint(
            ["customer_id"], [f"{SCHEMA}.carts.customer_id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("customer_id", "book_id"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("cart_items", schema=SCHEMA)
    op.drop_table("carts", schema=SCHEMA)
    op.drop_table("catalog_books", schema=SCHEMA)
