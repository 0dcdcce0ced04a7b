"""A unit of work's writes in one round trip.

On the order path a handler reads what it must (locking it), decides, then writes: the rows it
changes and the outbox rows of the messages it sends. Sent one by one, each write is a round
trip to Postgres; `Writes` gathers them and sends them as one statement,

    WITH write_0 AS (UPDATE ...), write_1 AS (INSERT ...) SELECT 1

Every write in it sees the same snapshot and none sees another's rows, so only writes that do
not read each other's effects belong together: the handler reads first, then writes. Rows of
any number travel as arrays that `unnest(...)` turns back into rows, so each statement is built
once and its compiled form (SQLAlchemy) and prepared statement (asyncpg) are reused. They run
in a `Tx` (`bookstore_shared.db`): asyncpg itself, no ORM on the way.
"""

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Insert,
    Table,
    bindparam,
    column,
    exists,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import Executable, Select
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine

from bookstore_shared.db import Tx

Columns = Mapping[str, TypeEngine[Any]]


def unnest(prefix: str, columns: Columns) -> TableValuedAlias:
    """`unnest(:prefix__a, :prefix__b, ...) AS prefix(a, b, ...)`: rows from one array a column,
    bound by `arrays(prefix, columns, rows)`."""
    arrays = (bindparam(f"{prefix}__{name}", type_=ARRAY(type_)) for name, type_ in columns.items())
    return (
        func.unnest(*arrays)
        .table_valued(*(column(name, type_) for name, type_ in columns.items()))
        .render_derived(name=prefix)
    )


Row = Mapping[str, Any]


def arrays(prefix: str, columns: Iterable[str], rows: Sequence[Row]) -> dict[str, Any]:
    """The parameters of `unnest(prefix, columns)` for these rows."""
    return {f"{prefix}__{name}": [row[name] for row in rows] for name in columns}


_NOTHING_MORE: Select[Any] = select(literal_column("1"))


@functools.cache
def together(
    *writes: Executable, claim: Executable | None = None, then: Select[Any] = _NOTHING_MORE
) -> Select[Any]:
    """One statement running every write, each a data-modifying CTE, then the query `then`
    (a function such as pg_notify, say). With `claim` (an INSERT ... ON CONFLICT DO NOTHING
    RETURNING), the first column says whether it inserted its row. Built once per set of
    writes (they are module-level statements), so it is compiled once."""
    ctes = [write.cte(f"write_{i}") for i, write in enumerate(writes)]  # type: ignore[attr-defined]
    if claim is not None:
        claimed = claim.cte("claim")  # type: ignore[attr-defined]
        ctes.append(claimed)
        inserted = exists(select(1).select_from(claimed)).label("claimed")
        then = select(inserted, *then.selected_columns)
    return then.add_cte(*ctes)


class Duplicate(Exception):
    """The claim found its row there already: everything written with it is rolled back."""


@dataclass
class Writes:
    """Writes gathered for one round trip: statements built once, and their parameters. The
    parameters of all the statements share one namespace: a name used twice must mean the same
    value, and no name may be a column's (SQLAlchemy would take it as a value for that column
    in an INSERT or UPDATE), hence the `prefix__column` names of `unnest` and `insert_row`.

    A `claim` (a consumer's inbox row) goes last, with the writes it makes count: if its row
    is there already, `run` raises `Duplicate` and the caller rolls the transaction back."""

    statements: list[Executable] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    final: Select[Any] | None = None
    claimed: Executable | None = None

    def add(self, statement: Executable, params: Mapping[str, Any]) -> None:
        if any(s is statement for s in self.statements):
            raise ValueError("a statement goes once into a round trip: pass its rows together")
        self.statements.append(statement)
        self.params.update(params)

    def then(self, query: Select[Any], params: Mapping[str, Any]) -> None:
        """A query to run after the writes, in the same statement (at most one)."""
        self.final = query
        self.params.update(params)

    def claim(self, statement: Executable, params: Mapping[str, Any]) -> None:
        self.claimed = statement
        self.params.update(params)

    async def run(self, tx: Tx) -> None:
        """Send what was gathered (nothing if nothing was), and start afresh."""
        if not self.statements and self.final is None and self.claimed is None:
            return
        if len(self.statements) == 1 and self.final is None and self.claimed is None:
            statement: Executable = self.statements[0]
        else:
            then = _NOTHING_MORE if self.final is None else self.final
            statement = together(*self.statements, claim=self.claimed, then=then)
        first = await tx.value(statement, self.params)
        claimed = self.claimed
        self.statements, self.params, self.final, self.claimed = [], {}, None, None
        if claimed is not None and not first:
            raise Duplicate


def insert_row(table: Table, prefix: str) -> Insert:
    """`INSERT INTO table` of one row, every column bound as `:prefix__<column>` (see `row`)."""
    return insert(table).values(
        {c.name: bindparam(f"{prefix}__{c.name}", type_=c.type) for c in table.columns}
    )


def row(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of `insert_row(table, prefix)`: a value for every column."""
    return {f"{prefix}__{name}": value for name, value in values.items()}
