"""reviews (with each book's rating count, total and average), who holds each reservation
(for verified purchases), and the cached summary of each book's description

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
SCHEMA = "inventory"


def upgrade() -> None:
    op.add_column(
        "books",
        sa.Column("rating_count", sa.Integer(), nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.add_column(
        "books",
        sa.Column("rating_total", sa.Integer(), nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.alter_column("books", "rating_count", server_default=None, schema=SCHEMA)
    op.alter_column("books", "rating_total", server_default=None, schema=SCHEMA)
    op.add_column(
        "books",
        sa.Column(
            "rating_average",
            sa.Numeric(2, 1),
            sa.Computed(
                "round(rating_total::numeric / nullif(rating_count, 0), 1)", persisted=True
            ),
            nullable=True,
        ),
        schema=SCHEMA,
    )
    op.create_check_constraint(
        "rating_count_not_negative", "books", "rating_count >= 0", schema=SCHEMA
    )
    op.add_column("reservations", sa.Column("customer_id", sa.Uuid(), nullable=True), schema=SCHEMA)
    op.create_index(
        "ix_reservations_customer", "reservations", ["customer_id"], unique=False, schema=SCHEMA
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="rating_one_to_five"),
        sa.ForeignKeyConstraint(["book_id"], [f"{SCHEMA}.books.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("book_id", "author_id", name="one_review_per_author"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_reviews_book_newest", "reviews", ["book_id", "created_at"], unique=False, schema=SCHEMA
    )
    op.create_index(
        "ix_reviews_book_rating",
        "reviews",
        ["book_id", "rating", "created_at"],
        unique=False,
        schema=SCHEMA,
    )
    op.create_table(
        "book_summaries",
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column(
            "description_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False
        ),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["book_id"], [f"{SCHEMA}.books.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("book_id"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("book_summaries", schema=SCHEMA)
    op.drop_index("ix_reviews_book_rating", table_name="reviews", schema=SCHEMA)
    op.drop_index("ix_reviews_book_newest", table_name="reviews", schema=SCHEMA)
    op.drop_table("reviews", schema=SCHEMA)
    op.drop_index("ix_reservations_customer", table_name="reservations", schema=SCHEMA)
    op.drop_column("reservations", "customer_id", schema=SCHEMA)
    op.drop_constraint("rating_count_not_negative", "books", schema=SCHEMA)
    op.drop_column("books", "rating_average", schema=SCHEMA)
    op.drop_column("books", "rating_total", schema=SCHEMA)
    op.drop_column("books", "rating_count", schema=SCHEMA)
