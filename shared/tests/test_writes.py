"""A `Tx` runs Core statements compiled once for asyncpg, their parameters converted as
SQLAlchemy would (enums to their values, JSON to text); `Writes` sends a unit of work's writes
as one statement, which writes all of them or, when its guard no longer holds, none."""

import uuid
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Column, Enum, Integer, MetaData, Table, Uuid, bindparam, select, update
from sqlalchemy.dialects.postgresql import JSONB

from bookstore_shared.db import Database
from bookstore_shared.writes import Writes, insert_row, row

SCHEMA = "writes_test"


class Shade(StrEnum):
    LIGHT = "light"
    DARK = "dark"


NOTES = Table(
    "notes",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("shade", Enum(Shade, native_enum=False, values_callable=lambda e: [m.value for m in e])),
    Column("body", JSONB),
    Column("version", Integer, nullable=False),
    schema=SCHEMA,
)
_INSERT = insert_row(NOTES, "note")
_READ = select(NOTES).where(NOTES.c.id == bindparam("note"))
_BUMP = (  # the guard: the note is at the version it was read at
    update(NOTES)
    .where(NOTES.c.id == bindparam("note"), NOTES.c.version == bindparam("read_version"))
    .values(version=NOTES.c.version + 1)
    .returning(NOTES.c.id)
)


@pytest.fixture
async def db(scratch_schema: Any) -> AsyncIterator[Database]:
    async with scratch_schema(SCHEMA, (NOTES,)) as database:
        yield database


def _note(**values: Any) -> dict[str, Any]:
    return row(
        "note", {"id": uuid.uuid4(), "shade": Shade.DARK, "body": None, "version": 0} | values
    )


async def test_compiled_statements_convert_parameters_as_sqlalchemy_does(db: Database) -> None:
    note = _note(shade=Shade.LIGHT, body={"title": "Dune", "tags": ["sand", "spice"]})
    async with db.transaction() as tx:
        await tx.value(_INSERT, note)
    async with db.autocommit() as tx:
        found = await tx.row(_READ, {"note": note["note__id"]})
    assert found is not None
    assert found["shade"] == "light"  # the enum's value, as SQLAlchemy stores it
    assert found["body"] == {"title": "Dune", "tags": ["sand", "spice"]}  # JSON, decoded


async def test_a_statement_missing_a_parameter_is_refused_before_it_is_sent(db: Database) -> None:
    async with db.autocommit() as tx:
        with pytest.raises(KeyError, match="note"):
            await tx.row(_READ, {})


async def test_a_transaction_that_raises_keeps_none_of_its_writes(db: Database) -> None:
    note = _note()

    async def write_then_fail() -> None:
        async with db.transaction() as tx:
            await tx.value(_INSERT, note)
            raise RuntimeError("after the write")

    with pytest.raises(RuntimeError):
        await write_then_fail()
    async with db.autocommit() as tx:
        assert await tx.row(_READ, {"note": note["note__id"]}) is None


async def test_a_guarded_write_whose_guard_holds_writes_everything(db: Database) -> None:
    first, second = _note(), _note(version=0)
    async with db.autocommit() as tx:
        await tx.value(_INSERT, first)
        writes = Writes()
        writes.guard(_BUMP, {"note": first["note__id"], "read_version": 0})
        writes.add(_INSERT, second)
        await writes.run(tx)
        bumped = await tx.row(_READ, {"note": first["note__id"]})
        added = await tx.row(_READ, {"note": second["note__id"]})
    assert bumped is not None
    assert bumped["version"] == 1
    assert added is not None


async def test_a_guard_that_no_longer_holds_writes_nothing(db: Database) -> None:
    """Read at version 0, changed meanwhile: the guarded write fails with a serialization
    failure, and the row it would have added is not there."""
    first, second = _note(version=1), _note()
    async with db.autocommit() as tx:
        await tx.value(_INSERT, first)
        writes = Writes()
        writes.guard(_BUMP, {"note": first["note__id"], "read_version": 0})
        writes.add(_INSERT, second)
        with pytest.raises(asyncpg.SerializationError, match="notes changed since it was read"):
            await writes.run(tx)
        assert await tx.row(_READ, {"note": second["note__id"]}) is None
        unchanged = await tx.row(_READ, {"note": first["note__id"]})
    assert unchanged is not None
    assert unchanged["version"] == 1


async def test_a_guard_counts_every_row_it_expects(db: Database) -> None:
    """A guard over several rows (a reservation's books) holds only if it touched them all."""
    notes = [_note(), _note(version=5)]
    async with db.autocommit() as tx:
        for note in notes:
            await tx.value(_INSERT, note)
        by_version = (
            update(NOTES)
            .where(NOTES.c.version == 0)
            .values(version=NOTES.c.version + 1)
            .returning(NOTES.c.id)
        )
        writes = Writes()
        writes.guard(by_version, {}, rows=2)
        with pytest.raises(asyncpg.SerializationError):
            await writes.run(tx)
        still = await tx.row(_READ, {"note": notes[0]["note__id"]})
    assert still is not None
    assert still["version"] == 0  # the one row it did touch: undone too
