"""A unit of work's writes in one round trip.

On the order path a handler reads what it must, decides, then writes: the rows it changes and
the outbox rows of the messages it sends. Sent one by one, each write is a round trip to
Postgres; `Writes` gathers them and sends them as one statement,

    WITH guard AS (UPDATE ... RETURNING ...), write_0 AS (INSERT ...), write_1 AS (UPDATE ...)
    SELECT CASE WHEN (SELECT count(*) FROM guard) = :guard_rows THEN true
                ELSE <schema>.concurrent_change('<table>') END

A statement is atomic on its own, so a handler needs no transaction around its reads: it
reads without locking, decides, and its writes carry a `guard`, a write that must touch as
many rows as the handler expects if what it read still holds (`UPDATE orders ... WHERE version
= :read_version`, or books with the copies a reservation takes). If the guard touches fewer,
the statement fails with a serialization failure (SQLSTATE 40001, raised by the schema's
`concurrent_change` function, see `bookstore_shared.migrations`) and nothing of it is
written: the handler runs again, on a fresh read. Rows that must be unique (an inbox row, a
reservation, a delivery) guard themselves: a second one fails the statement the same way.

Every write in it sees the same snapshot and none sees another's rows, so only writes that do
not read each other's effects belong together. Rows of any number travel as arrays that
`unnest(...)` turns back into rows, so each statement is built once and its compiled form
(SQLAlchemy) and prepared statement (asyncpg) are reused. They run in a `Tx`
(`bookstore_shared.db`): asyncpg itself, no ORM on the way.
"""

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Insert,
    Integer,
    Table,
    bindparam,
    case,
    column,
    func,
    insert,
    literal,
    literal_column,
    select,
    true,
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
GUARD_ROWS = "guard_rows"


@functools.cache
def together(
    *writes: Executable, guard: Executable | None = None, then: Select[Any] = _NOTHING_MORE
) -> Select[Any]:
    """One statement running every write, each a data-modifying CTE, then the query `then`
    (a function such as pg_notify, say). With a `guard` (an UPDATE ... RETURNING), the
    statement fails unless the guard returned `:guard_rows` rows. Built once per set of
    writes (they are module-level statements), so it is compiled once."""
    ctes = [write.cte(f"write_{i}") for i, write in enumerate(writes)]  # type: ignore[attr-defined]
    if guard is not None:
        guarded = guard.cte("guard")  # type: ignore[attr-defined]
        ctes.append(guarded)
        table = guard.table  # type: ignore[attr-defined]
        rows = select(func.count()).select_from(guarded).scalar_subquery()
        changed = getattr(func, table.schema).concurrent_change(literal(table.name))
        holds = case((rows == bindparam(GUARD_ROWS, type_=Integer()), true()), else_=changed)
        then = select(holds.label("guard_held"), *then.selected_columns)
    return then.add_cte(*ctes)


@dataclass
class Writes:
    """Writes gathered for one round trip: statements built once, and their parameters. The
    parameters of all the statements share one namespace: a name used twice must mean the same
    value, and no name may be a column's (SQLAlchemy would take it as a value for that column
    in an INSERT or UPDATE), hence the `prefix__column` names of `unnest` and `insert_row`."""

    statements: list[Executable] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    final: Select[Any] | None = None
    guarded: Executable | None = None

    def add(self, statement: Executable, params: Mapping[str, Any]) -> None:
        if any(s is statement for s in self.statements):
            raise ValueError("a statement goes once into a round trip: pass its rows together")
        self.statements.append(statement)
        self.params.update(params)

    def guard(self, statement: Executable, params: Mapping[str, Any], *, rows: int = 1) -> None:
        """A write (UPDATE ... RETURNING) that touches `rows` rows if what the caller read
        still holds; if it touches fewer, the round trip fails and nothing is written (at
        most one guard a round trip)."""
        if self.guarded is not None:
            raise ValueError("one guard a round trip")
        self.guarded = statement
        self.params.update(params)
        self.params[GUARD_ROWS] = rows

    def then(self, query: Select[Any], params: Mapping[str, Any]) -> None:
        """A query to run after the writes, in the same statement (at most one)."""
        self.final = query
        self.params.update(params)

    async def run(self, tx: Tx) -> None:
        """Send what was gathered (nothing if nothing was), and start afresh."""
        if not self.statements and self.final is None and self.guarded is None:
            return
        if len(self.statements) == 1 and self.final is None and self.guarded is None:
            statement: Executable = self.statements[0]
        else:
            then = _NOTHING_MORE if self.final is None else self.final
            statement = together(*self.statements, guard=self.guarded, then=then)
        params = self.params
        self.statements, self.params, self.final, self.guarded = [], {}, None, None
        await tx.value(statement, params)


def insert_row(table: Table, prefix: str) -> Insert:
    """`INSERT INTO table` of one row, every column bound as `:prefix__<column>` (see `row`)."""
    return insert(table).values(
        {c.name: bindparam(f"{prefix}__{c.name}", type_=c.type) for c in table.columns}
    )


def row(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of `insert_row(table, prefix)`: a value for every column."""
    return {f"{prefix}__{name}": value for name, value in values.items()}
