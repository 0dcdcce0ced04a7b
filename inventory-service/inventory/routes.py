import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from bookstore_shared.db import SessionDep
from bookstore_shared.identity import CurrentPrincipal, Principal, StaffUser
from bookstore_shared.pagination import PageDep
from inventory import service
from inventory.models import (
    Book,
    BookCreate,
    BookPublic,
    BooksPage,
    BookStaff,
    BookUpdate,
    Category,
    Isbn,
)
from inventory.service import BookSort

router = APIRouter(prefix="/books", tags=["books"])


def _view(book: Book, principal: Principal) -> BookPublic | BookStaff:
    model = BookStaff if principal.is_staff else BookPublic
    return model.model_validate(book, from_attributes=True)


@router.get("")
async def list_books(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=200, description="Full-text search")] = None,
    author: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=80)] = None,
    sort: BookSort | None = None,
) -> BooksPage:
    """List the catalog: search, filter by author or category, sort, one page at a time."""
    books, count = await service.list_books(
        session, page=page, q=q, author=author, category=category, sort=sort
    )
    return BooksPage(
        data=[_view(b, principal) for b in books], count=count, page=page.page, size=page.size
    )


@router.get("/categories")
async def list_categories(session: SessionDep) -> list[Category]:
    """Every category in the catalog with how many books it holds."""
    return await service.list_categories(session)


@router.get("/isbn/{isbn}")
async def get_book_by_isbn(
    isbn: Isbn, session: SessionDep, principal: CurrentPrincipal
) -> BookStaff | BookPublic:
    """One book by its ISBN-10 or ISBN-13."""
    return _view(await service.get_book_by_isbn(session, isbn=isbn), principal)


@router.get("/{book_id}")
async def get_book(
    book_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> BookStaff | BookPublic:
    """One book by id."""
    return _view(await service.get_book(session, book_id=book_id), principal)


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
