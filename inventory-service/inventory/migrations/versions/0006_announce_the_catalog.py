"""announce every book once (BookChanged, through the outbox) so sales can keep carts

Books created before BookChanged existed were never announced. Their messages go into the
outbox here, built as `Envelope` would build them; the relay's poller sends them within seconds
of the app starting. Sales keeps the newest change of each book, so a book announced again
later (or twice) is harmless.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        INSERT INTO inventory.outbox (id, type, correlation_id, body)
        SELECT m.id, 'BookChanged', b.id, jsonb_build_object(
            'message_id', m.id,
            'type', 'BookChanged',
            'correlation_id', b.id,
            'causation_id', NULL,
            'occurred_at', now(),
            'traceparent', NULL,
            'payload', jsonb_build_object(
                'book_id', b.id,
                'title', b.title,
                'price_cents', b.price_cents,
                'deleted', b.deleted_at IS NOT NULL,
                'changed_at', b.updated_at
            )
        )
        FROM inventory.books AS b CROSS JOIN LATERAL (SELECT gen_random_uuid() AS id) AS m
        """
    )


def downgrade() -> None:
    pass  # messages sent are sent; what sales keeps stays true
