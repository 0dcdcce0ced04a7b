import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status

from bookstore_shared.db import SessionDep
from bookstore_shared.errors import Forbidden
from bookstore_shared.identity import CurrentPrincipal, Principal, StaffUser
from bookstore_shared.pagination import PageDep
from inventory import imports, service
from inventory.models import (
    BookCreate,
    BookPublic,
    BooksPage,
    BookStaff,
    BookUpdate,
    Category,
    Isbn,
    LowStockBook,
    LowStockPage,
    StockAdjustmentCreate,
    StockAdjustmentPublic,
    StockAdjustmentsPage,
)
from inventory.service import BookSort

router = APIRouter(prefix="/books", tags=["books"])
reports = APIRouter(prefix="/reports", tags=["reports"])
# How long a shared cache (the gateway's) may keep a catalog answer everyone but staff gets.
PUBLIC_MAX_AGE_SECONDS = 1


def _view(book: Any, principal: Principal) -> BookPublic | BookStaff:
    model = BookStaff if principal.is_staff else BookPublic
    return model.model_validate(book, from_attributes=not isinstance(book, Mapping))


def _shareable(response: Response, principal: Principal, etag: str | None = None) -> None:
    """Catalog answers for anyone but staff are the same for all: a shared cache may keep
    them a moment. Staff answers show stock counts and are theirs alone."""
    if principal.is_staff:
        response.headers["Cache-Control"] = "private, no-store"
    else:
        response.headers["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE_SECONDS}"
    if etag:
        response.headers["ETag"] = etag


def _etag(book: Mapping[str, Any], principal: Principal) -> str:
    view = "staff" if principal.is_staff else "public"
    version = f"{book['updated_at'].timestamp()}-{book['rating_count']}-{book['rating_total']}"
    return f'W/"{book["id"]}-{version}-{view}"'


@router.get("")
async def list_books(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    response: Response,
    q: Annotated[str | None, Query(max_length=200, description="Full-text search")] = None,
    author: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=80)] = None,
    sort: BookSort | None = None,
    deleted: Annotated[
        bool, Query(description="Staff only: the books withdrawn from the catalog instead")
    ] = False,
) -> BooksPage:
    """List the catalog: search, filter by author or category, sort, one page at a time."""
    if deleted and not principal.is_staff:
        raise Forbidden("Only staff see withdrawn books.")
    _shareable(response, principal)
    books, count = await service.list_books(
        session, page=page, q=q, author=author, category=category, sort=sort, deleted=deleted
    )
    return BooksPage(
        data=[_view(b, principal) for b in books], count=count, page=page.page, size=page.size
    )


@router.get("/categories")
async def list_categories(
    session: SessionDep, principal: CurrentPrincipal, response: Response
) -> list[Category]:
    """Every category in the catalog with how many books it holds."""
    _shareable(response, principal)
    return await service.list_categories(session)


@router.get("/isbn/{isbn}")
async def get_book_by_isbn(
    isbn: Isbn, session: SessionDep, principal: CurrentPrincipal, response: Response
) -> BookStaff | BookPublic:
    """One book by its ISBN-10 or ISBN-13."""
    _shareable(response, principal)
    return _view(await service.get_book_by_isbn(session, isbn=isbn), principal)


_IMPORT_BODY = {
    "required": True,
    "content": {
        "text/csv": {
            "schema": {"type": "string"},
            "example": "isbn,title,author,category,price_cents,stock,published_year\n"
            "9780141439518,Pride and Prejudice,Jane Austen,Classics,899,12,1813\n",
        },
        "application/json": {
            "schema": {
                "type": "array",
                "maxItems": imports.MAX_ROWS,
                "items": imports.ImportRow.model_json_schema(),
            }
        },
    },
}


@router.post(
    "/import",
    openapi_extra={"requestBody": _IMPORT_BODY},
    responses={415: {"description": "Neither text/csv nor application/json"}},
)
async def import_books(
    request: Request,
    session: SessionDep,
    staff: StaffUser,
    dry_run: Annotated[bool, Query(description="Check and count only; write nothing")] = False,
) -> imports.ImportSummary:
    """Create or update books from CSV (header `isbn,title,author,category,price_cents,stock`,
    optionally `description,published_year`) or a JSON array of the same objects, up to
    10,000 rows and 5 MiB (staff). All or nothing: any bad row is a 422 listing every error
    (`row`, `field`, `message`; CSV row 1 is the header) and nothing is written. A known ISBN
    is updated, its available stock set to the file's through a `correction` ledger entry; the
    same file imported twice changes nothing."""
    assert staff.user_id is not None
    parsed = imports.parse(await request.body(), request.headers.get("content-type", ""))
    if parsed.errors:
        raise imports.ImportInvalid(
            f"{len(parsed.errors)} errors; nothing was written.", errors=parsed.errors[:1000]
        )
    summary = await imports.run(session, parsed.rows, actor=staff.user_id)
    if dry_run:
        await session.rollback()
    return summary


@router.get("/{book_id}", responses={304: {"description": "Not modified (If-None-Match)"}})
async def get_book(
    book_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> BookStaff | BookPublic:
    """One book by id (with an ETag: send it back in If-None-Match for a 304)."""
    book = await service.read_book(session, book_id=book_id)
    etag = _etag(book, principal)
    if if_none_match and etag in {tag.strip() for tag in if_none_match.split(",")}:
        not_modified = Response(status_code=status.HTTP_304_NOT_MODIFIED)
        _shareable(not_modified, principal, etag)
        return not_modified  # type: ignore[return-value]
    _shareable(response, principal, etag)
    return _view(book, principal)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_book(
    data: BookCreate, session: SessionDep, staff: StaffUser, response: Response
) -> BookStaff:
    """Add a book to the catalog with its opening stock (staff)."""
    book = await service.create_book(session, data=data)
    response.headers["Location"] = f"/api/books/{book.id}"
    return BookStaff.model_validate(book, from_attributes=True)


@router.patch("/{book_id}")
async def update_book(
    book_id: uuid.UUID, changes: BookUpdate, session: SessionDep, staff: StaffUser
) -> BookStaff:
    """Change a book's details (staff)."""
    book = await service.update_book(session, book_id=book_id, changes=changes)
    return BookStaff.model_validate(book, from_attributes=True)


@router.delete("/{book_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_book(book_id: uuid.UUID, session: SessionDep, staff: StaffUser) -> None:
    """Withdraw a book from the catalog; its history stays (staff)."""
    await service.delete_book(session, book_id=book_id)


@router.post("/{book_id}/restore")
async def restore_book(book_id: uuid.UUID, session: SessionDep, staff: StaffUser) -> BookStaff:
    """Bring a withdrawn book back into the catalog (staff)."""
    book = await service.restore_book(session, book_id=book_id)
    return BookStaff.model_validate(book, from_attributes=True)


@router.post("/{book_id}/stock-adjustments", status_code=status.HTTP_201_CREATED)
async def adjust_stock(
    book_id: uuid.UUID,
    data: StockAdjustmentCreate,
    session: SessionDep,
    staff: StaffUser,
    response: Response,
) -> StockAdjustmentPublic:
    """Add copies to a book's stock or take them away, with the reason (staff). Taking more
    than is available is refused (409 insufficient_stock) and changes nothing."""
    assert staff.user_id is not None
    adjustment = await service.adjust_stock(
        session, book_id=book_id, data=data, actor=staff.user_id
    )
    response.headers["Location"] = f"/api/books/{book_id}/stock-adjustments"
    return StockAdjustmentPublic.model_validate(adjustment, from_attributes=True)


@router.get("/{book_id}/stock-adjustments")
async def list_stock_adjustments(
    book_id: uuid.UUID, session: SessionDep, staff: StaffUser, page: PageDep
) -> StockAdjustmentsPage:
    """A book's stock ledger, newest first (staff)."""
    rows, count = await service.list_adjustments(session, book_id=book_id, page=page)
    return StockAdjustmentsPage(
        data=[StockAdjustmentPublic.model_validate(r, from_attributes=True) for r in rows],
        count=count,
        page=page.page,
        size=page.size,
    )


@reports.get("/low-stock")
async def low_stock_report(
    session: SessionDep,
    staff: StaffUser,
    page: PageDep,
    threshold: Annotated[
        int, Query(ge=0, le=1_000_000, description="At most this many available")
    ] = 5,
) -> LowStockPage:
    """Books in the catalog running out: at most `threshold` available, fewest first (staff)."""
    rows, count = await service.low_stock(session, threshold=threshold, page=page)
    return LowStockPage(
        data=[LowStockBook.model_validate(dict(r)) for r in rows],
        count=count,
        page=page.page,
        size=page.size,
    )
