"""Readers' reviews: one per account and book, changed or deleted by its author (staff may
delete any). The book keeps the reviews' count and rating total, changed in the review's own
transaction, so the catalog shows `rating_average` and `rating_count` without a join.

A review is a verified purchase while its author holds a committed reservation of the book.
Inventory learns who orders from ReserveStock (`customer_id`) and that the order went through
from CommitStock, the saga's last step before the order is confirmed; an order cancelled
later has its stock returned (ReturnStock) and no longer counts. So the answer comes from
inventory's own tables: no call to sales, and no message more per order.
"""

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import (
    ColumnElement,
    Integer,
    RowMapping,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_shared.columns import utcnow
from bookstore_shared.db import SessionDep
from bookstore_shared.errors import Conflict, Forbidden, NotFound
from bookstore_shared.identity import CurrentPrincipal, CurrentUser, Principal
from bookstore_shared.pagination import PageDep, PageParams
from inventory.errors import BookNotFound
from inventory.models import (
    Book,
    Reservation,
    ReservationLine,
    ReservationStatus,
    Review,
    ReviewCreate,
    ReviewPublic,
    ReviewsPage,
    ReviewUpdate,
)

BOOKS: Table = Book.__table__  # type: ignore[assignment]
REVIEWS: Table = Review.__table__  # type: ignore[assignment]
RESERVATIONS: Table = Reservation.__table__  # type: ignore[assignment]
RESERVATION_LINES: Table = ReservationLine.__table__  # type: ignore[assignment]

router = APIRouter(prefix="/books/{book_id}/reviews", tags=["reviews"])
ReviewSort = Literal["-created_at", "-rating"]


class ReviewNotFound(NotFound):
    code, title = "review_not_found", "Review not found"


class ReviewExists(Conflict):
    code, title = "review_exists", "You have reviewed this book already"


class NotReviewAuthor(Forbidden):
    code, title = "not_review_author", "Only its author may do that to a review"


_VERIFIED = exists(
    select(1)
    .select_from(
        RESERVATIONS.join(
            RESERVATION_LINES, RESERVATION_LINES.c.order_id == RESERVATIONS.c.order_id
        )
    )
    .where(
        RESERVATIONS.c.customer_id == REVIEWS.c.author_id,
        RESERVATIONS.c.status == ReservationStatus.COMMITTED,
        RESERVATION_LINES.c.book_id == REVIEWS.c.book_id,
    )
).label("verified_purchase")
_REVIEW_COLUMNS = (*REVIEWS.columns, _VERIFIED)
_IN_CATALOG = and_(BOOKS.c.id == bindparam("book"), BOOKS.c.deleted_at.is_(None))


def _rating_change(count: int, total: Any) -> Any:
    return (
        update(BOOKS)
        .where(_IN_CATALOG)
        .values(
            rating_count=BOOKS.c.rating_count + count, rating_total=BOOKS.c.rating_total + total
        )
        .returning(BOOKS.c.id)
    )


_ADD_RATING = _rating_change(1, bindparam("rating", type_=Integer()))
_REMOVE_RATING = _rating_change(-1, -bindparam("rating", type_=Integer()))
_CHANGE_RATING = _rating_change(
    0, bindparam("new", type_=Integer()) - bindparam("old", type_=Integer())
)
_INSERT = insert(REVIEWS).on_conflict_do_nothing(constraint="one_review_per_author")


async def _read(session: AsyncSession, review_id: uuid.UUID) -> ReviewPublic:
    row = (
        (await session.execute(select(*_REVIEW_COLUMNS).where(REVIEWS.c.id == review_id)))
        .mappings()
        .one()
    )
    return ReviewPublic.model_validate(dict(row))


async def _locked(session: AsyncSession, book_id: uuid.UUID, review_id: uuid.UUID) -> RowMapping:
    row = (
        (
            await session.execute(
                select(REVIEWS)
                .where(REVIEWS.c.id == review_id, REVIEWS.c.book_id == book_id)
                .with_for_update()
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise ReviewNotFound(f"No review {review_id} of book {book_id}.")
    return row


async def _book_in_catalog(session: AsyncSession, book_id: uuid.UUID) -> None:
    if await session.scalar(select(BOOKS.c.id).where(_IN_CATALOG), {"book": book_id}) is None:
        raise BookNotFound(f"No book with id {book_id}.")


async def create_review(
    session: AsyncSession, *, book_id: uuid.UUID, author_id: uuid.UUID, data: ReviewCreate
) -> ReviewPublic:
    """The book's rating counts change first: that locks the book's row, so two reviews of
    one book by one account cannot both pass; the second finds the first."""
    if await session.scalar(_ADD_RATING, {"book": book_id, "rating": data.rating}) is None:
        raise BookNotFound(f"No book with id {book_id}.")
    now, review_id = utcnow(), uuid.uuid4()
    values = {"id": review_id, "book_id": book_id, "author_id": author_id, "created_at": now}
    inserted = await session.execute(
        _INSERT.values(**values, **data.model_dump(), updated_at=now).returning(REVIEWS.c.id)
    )
    if inserted.first() is None:
        existing = await session.scalar(
            select(REVIEWS.c.id).where(
                REVIEWS.c.book_id == book_id, REVIEWS.c.author_id == author_id
            )
        )
        raise ReviewExists(
            f"Your review of this book is {existing}: change it with PATCH.", review_id=existing
        )
    return await _read(session, review_id)


async def update_review(
    session: AsyncSession,
    *,
    book_id: uuid.UUID,
    review_id: uuid.UUID,
    principal: Principal,
    changes: ReviewUpdate,
) -> ReviewPublic:
    review = await _locked(session, book_id, review_id)
    if review["author_id"] != principal.user_id:
        raise NotReviewAuthor("Only the author of a review may change it.")
    values = changes.model_dump(exclude_unset=True)
    if "rating" in values and values["rating"] != review["rating"]:
        await session.execute(
            _CHANGE_RATING, {"book": book_id, "new": values["rating"], "old": review["rating"]}
        )
    if values:
        await session.execute(
            update(REVIEWS).where(REVIEWS.c.id == review_id).values(**values, updated_at=utcnow())
        )
    return await _read(session, review_id)


async def delete_review(
    session: AsyncSession, *, book_id: uuid.UUID, review_id: uuid.UUID, principal: Principal
) -> None:
    review = await _locked(session, book_id, review_id)
    if not principal.can_see(review["author_id"]):
        raise NotReviewAuthor("Only the author of a review, or staff, may delete it.")
    await session.execute(delete(REVIEWS).where(REVIEWS.c.id == review_id))
    # A withdrawn book's counts are left as they are: it is out of the catalog.
    await session.execute(_REMOVE_RATING, {"book": book_id, "rating": review["rating"]})


_ORDER: dict[str, list[ColumnElement[Any]]] = {
    "-created_at": [REVIEWS.c.created_at.desc(), REVIEWS.c.id],
    "-rating": [REVIEWS.c.rating.desc(), REVIEWS.c.created_at.desc(), REVIEWS.c.id],
}


async def list_reviews(
    session: AsyncSession, *, book_id: uuid.UUID, sort: ReviewSort, page: PageParams
) -> tuple[list[ReviewPublic], int]:
    await _book_in_catalog(session, book_id)
    mine = REVIEWS.c.book_id == book_id
    count = await session.scalar(select(func.count()).select_from(REVIEWS).where(mine))
    rows = await session.execute(
        select(*_REVIEW_COLUMNS)
        .where(mine)
        .order_by(*_ORDER[sort])
        .offset(page.offset)
        .limit(page.size)
    )
    return [ReviewPublic.model_validate(dict(r)) for r in rows.mappings()], count or 0


async def get_review(
    session: AsyncSession, *, book_id: uuid.UUID, review_id: uuid.UUID
) -> ReviewPublic:
    await _book_in_catalog(session, book_id)
    row = (
        (
            await session.execute(
                select(*_REVIEW_COLUMNS).where(
                    REVIEWS.c.id == review_id, REVIEWS.c.book_id == book_id
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise ReviewNotFound(f"No review {review_id} of book {book_id}.")
    return ReviewPublic.model_validate(dict(row))


def _author(user: Principal) -> uuid.UUID:
    assert user.user_id is not None  # CurrentUser: signed in
    return user.user_id


@router.post("", status_code=status.HTTP_201_CREATED)
async def post_review(
    book_id: uuid.UUID,
    data: ReviewCreate,
    session: SessionDep,
    user: CurrentUser,
    response: Response,
) -> ReviewPublic:
    """Review a book (signed in): a rating from 1 to 5, an optional title, a text. One review
    per account and book: a second is 409 `review_exists` (change the first with PATCH)."""
    review = await create_review(session, book_id=book_id, author_id=_author(user), data=data)
    response.headers["Location"] = f"/api/books/{book_id}/reviews/{review.id}"
    return review


@router.get("")
async def list_book_reviews(
    book_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    sort: Annotated[ReviewSort, Query(description="Newest first, or best rated first")] = (
        "-created_at"
    ),
) -> ReviewsPage:
    """A book's reviews, newest or best rated first, each saying whether its author bought
    the book (`verified_purchase`)."""
    reviews, count = await list_reviews(session, book_id=book_id, sort=sort, page=page)
    return ReviewsPage(data=reviews, count=count, page=page.page, size=page.size)


@router.get("/{review_id}")
async def get_book_review(
    book_id: uuid.UUID, review_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> ReviewPublic:
    """One review of a book."""
    return await get_review(session, book_id=book_id, review_id=review_id)


@router.patch("/{review_id}")
async def patch_review(
    book_id: uuid.UUID,
    review_id: uuid.UUID,
    changes: ReviewUpdate,
    session: SessionDep,
    user: CurrentUser,
) -> ReviewPublic:
    """Change your review: the fields given (its author only; 403 `not_review_author`)."""
    return await update_review(
        session, book_id=book_id, review_id=review_id, principal=user, changes=changes
    )


@router.delete("/{review_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_review(
    book_id: uuid.UUID, review_id: uuid.UUID, session: SessionDep, user: CurrentUser
) -> None:
    """Delete a review: its author, or staff (anyone else: 403 `not_review_author`)."""
    await delete_review(session, book_id=book_id, review_id=review_id, principal=user)
