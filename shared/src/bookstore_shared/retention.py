"""Retention: rows kept only as history are deleted once older than their keep time, a bounded
batch at a time, so that no table only grows. Replicas may prune side by side: a row is
deleted once, whoever gets there first.
"""

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy import ColumnElement, Delete, Table, delete, func, select, tuple_

from bookstore_shared.background import every
from bookstore_shared.db import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Retention:
    """Rows of `table` whose `age` column is older than `keep` (and that match `only`)."""

    table: Table
    age: ColumnElement[datetime]
    keep: timedelta
    only: ColumnElement[bool] | None = None

    @property
    def name(self) -> str:
        return self.table.fullname

    def batch(self, size: int) -> Delete:
        key = tuple(self.table.primary_key.columns)
        conditions = [self.age < func.now() - self.keep]
        if self.only is not None:
            conditions.append(self.only)
        oldest = select(*key).where(*conditions).limit(size)
        return delete(self.table).where(tuple_(*key).in_(oldest))


async def prune(
    db: Database, rules: Sequence[Retention], *, batch: int = 1000, max_batches: int = 20
) -> dict[str, int]:
    """One round: at most `max_batches` batches per table, each its own short transaction.
    Returns the rows deleted per table."""
    removed: dict[str, int] = {}
    for rule in rules:
        total = 0
        for _ in range(max_batches):
            async with db.engine.begin() as conn:
                deleted: int = (await conn.execute(rule.batch(batch))).rowcount
            total += deleted
            if deleted < batch:
                break
        removed[rule.name] = total
        if total:
            log.info("retention_pruned", table=rule.name, rows=total)
    return removed


def pruning(
    db: Database, rules: Sequence[Retention], *, every_seconds: float
) -> AbstractAsyncContextManager[None]:
    """Prune every `every_seconds` for as long as the block runs."""
    return every(every_seconds, partial(prune, db, rules), "retention")
