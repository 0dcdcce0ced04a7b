"""Bulk import of the catalog from CSV or JSON: all or nothing, upsert by ISBN.

Every row is checked before anything is written; one bad row and the answer is a 422 naming
each error (`row`, `field`, `message`; in CSV row 1 is the header, in JSON the first object is
row 1) and nothing changes. A new ISBN creates a book; a known one gets the file's fields, and
its shelf stock (available copies) is brought to the file's `stock` through a `correction`
entry in its ledger; so importing the same file twice changes nothing the second time. A
withdrawn book stays withdrawn (restore it on its own). With `dry_run` the import is checked
and counted, then rolled back.
"""

import csv
import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.columns import utcnow
from bookstore_shared.errors import DomainError
from bookstore_shared.messages import BookChanged
from inventory import service
from inventory.models import AdjustmentReason, Book, BookBase, Isbn, StockAdjustment

MAX_ROWS = 10_000
MAX_BYTES = 5 * 1024 * 1024
REQUIRED = ("isbn", "title", "author", "category", "price_cents", "stock")
OPTIONAL = ("description", "published_year")
FIELDS = ("title", "author", "category", "description", "price_cents", "published_year")
BOOKS: Table = Book.__table__  # type: ignore[assignment]
LEDGER: Table = StockAdjustment.__table__  # type: ignore[assignment]


class ImportRow(BookBase):
    model_config = ConfigDict(extra="forbid")

    isbn: Isbn
    stock: int = Field(ge=0, le=1_000_000)


class ImportSummary(BaseModel):
    created: int
    updated: int
    unchanged: int
    errors: list[dict[str, Any]] = []


class ImportInvalid(DomainError):
    status, code, title = 422, "import_invalid", "The import has errors: nothing was written"


class UnsupportedMediaType(DomainError):
    status, code, title = 415, "unsupported_media_type", "Send text/csv or application/json"


@dataclass
class Parsed:
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    strict: bool = False

    def error(self, row: int, name: str | None, message: str) -> None:
        self.errors.append({"row": row, "field": name, "message": message})


def _records(body: bytes, content_type: str, parsed: Parsed) -> list[tuple[int, dict[str, Any]]]:
    """(row number, raw fields) of every record in the body; `parsed.strict` for JSON, whose
    numbers must be numbers (CSV cells are all text)."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        parsed.error(1, None, "the body is not UTF-8")
        return []
    if kind == "application/json":
        parsed.strict = True
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            parsed.error(1, None, f"not JSON: {exc.msg} at line {exc.lineno}")
            return []
        if not isinstance(items, list):
            parsed.error(1, None, "a JSON array of books is expected")
            return []
        records = []
        for number, item in enumerate(items, start=1):
            if isinstance(item, dict):
                records.append((number, item))
            else:
                parsed.error(number, None, "each item must be an object")
        return records
    if kind in ("text/csv", "application/csv"):
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in REQUIRED if name not in header]
        unknown = [name for name in header if name not in REQUIRED + OPTIONAL]
        for name in missing:
            parsed.error(1, name, "missing from the header")
        for name in unknown:
            parsed.error(1, name, "not a column this import knows")
        if missing or unknown:
            return []
        reader.fieldnames = header
        records = []
        for number, raw in enumerate(reader, start=2):
            if None in raw:  # more cells than the header has columns
                parsed.error(number, None, "more cells than columns")
                continue
            # An empty cell of an optional column is no value; elsewhere it is checked as given.
            records.append(
                (number, {k: v for k, v in raw.items() if not (k in OPTIONAL and v in ("", None))})
            )
        return records
    raise UnsupportedMediaType(f"{kind or 'no content type'} is not an import format.")


def parse(body: bytes, content_type: str) -> Parsed:
    parsed = Parsed()
    records = _records(body, content_type, parsed)
    if len(records) > MAX_ROWS:
        parsed.error(1, None, f"{len(records)} rows: at most {MAX_ROWS} per import")
        return parsed
    seen: dict[str, int] = {}
    for number, record in records:
        try:
            row = ImportRow.model_validate(record, strict=parsed.strict)
        except ValidationError as exc:
            for problem in exc.errors():
                name = ".".join(str(part) for part in problem["loc"]) or None
                parsed.error(number, name, problem["msg"])
            continue
        if row.isbn in seen:
            parsed.error(number, "isbn", f"{row.isbn} is on row {seen[row.isbn]} already")
            continue
        seen[row.isbn] = number
        parsed.rows.append(row)
    return parsed


_EXISTING = (
    select(
        BOOKS.c.id,
        BOOKS.c.isbn,
        BOOKS.c.available,
        BOOKS.c.deleted_at,
        *(BOOKS.c[name] for name in FIELDS),
    )
    .where(BOOKS.c.isbn == bindparam("isbns", type_=ARRAY(BOOKS.c.isbn.type)).any_())
    .order_by(BOOKS.c.id)
    .with_for_update()
)
_UPDATE = (
    update(BOOKS)
    .where(BOOKS.c.id == bindparam("book"))
    .values(
        {name: bindparam(f"new_{name}") for name in FIELDS}
        | {"available": bindparam("new_available"), "updated_at": bindparam("now")}
    )
)


def _announcement(
    book_id: uuid.UUID, row: ImportRow, deleted_at: datetime | None, now: datetime
) -> BookChanged:
    """What sales is told of a book the import created or changed (no need to read it back)."""
    return BookChanged(
        book_id=book_id,
        title=row.title,
        price_cents=row.price_cents,
        deleted=deleted_at is not None,
        changed_at=now,
    )


async def run(session: AsyncSession, rows: list[ImportRow], *, actor: uuid.UUID) -> ImportSummary:
    """Write the checked rows: the books they touch are locked in id order first, so orders
    reserving them meanwhile wait, and no stock is counted twice."""
    now = utcnow()
    existing = {
        r.isbn: r for r in await session.execute(_EXISTING, {"isbns": [row.isbn for row in rows]})
    }
    new, changed, ledger, announced, unchanged = [], [], [], [], 0
    for row in rows:
        values = {name: getattr(row, name) for name in FIELDS}
        book = existing.get(row.isbn)
        if book is None:
            new.append(
                values
                | {
                    "id": uuid.uuid4(),
                    "isbn": row.isbn,
                    "available": row.stock,
                    "reserved": 0,
                    "sold": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            announced.append(_announcement(new[-1]["id"], row, None, now))
            continue
        delta = row.stock - book.available
        if delta == 0 and all(getattr(book, name) == value for name, value in values.items()):
            unchanged += 1
            continue
        announced.append(_announcement(book.id, row, book.deleted_at, now))
        changed.append(
            {f"new_{name}": value for name, value in values.items()}
            | {"book": book.id, "new_available": row.stock, "now": now}
        )
        if delta:
            ledger.append(
                {
                    "id": uuid.uuid4(),
                    "book_id": book.id,
                    "delta": delta,
                    "reason": AdjustmentReason.CORRECTION,
                    "note": "bulk import",
                    "actor": actor,
                    "available_after": row.stock,
                    "created_at": now,
                }
            )
    if new:
        await session.execute(insert(BOOKS), new)
    if changed:
        await session.execute(_UPDATE, changed)
    if ledger:
        await session.execute(insert(LEDGER), ledger)
    await service.outbox.add_all(session, announced)
    return ImportSummary(created=len(new), updated=len(changed), unchanged=unchanged)
