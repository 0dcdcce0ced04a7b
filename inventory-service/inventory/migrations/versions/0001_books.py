"""books

Revision ID: 0001
Revises:
Create Date: 2026-11-21 07:14:52.840636
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "books",
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=5000), nullable=True),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("isbn", sqlmodel.sql.sqltypes.AutoString(length=13), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("sold", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed(
                "setweight(to_tsvector('english', coalesce(title, '')), 'A') || setweight(to_tsvector('english', coalesce(author, '')), 'B') || setweight(to_tsvector('english', coalesce(category, '')), 'C') || setweight(to_tsvector('english', coalesce(description, '')), 'D')",
                persisted=True,
            ),
            nullable=True,
        ),
        sa.CheckConstraint("available >= 0", name="available_not_negative"),
        sa.CheckConstraint("price_cents >= 0", name="price_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        sa.CheckConstraint("sold >= 0", name="sold_not_negative"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("isbn"),
        schema="inventory",
    )
    op.create_index(
        "ix_books_search",
        "books",
        ["search"],
        unique=False,
        schema="inventory",
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_index("ix_books_search", table_name="books", schema="inventory", postgresql_using="gin")
    op.drop_table("books", schema="inventory")
