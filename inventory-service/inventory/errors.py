from bookstore_shared.errors import Conflict, NotFound


class BookNotFound(NotFound):
    code, title = "book_not_found", "Book not found"


class IsbnTaken(Conflict):
    code, title = "isbn_taken", "A book with this ISBN exists already"


class InsufficientStock(Conflict):
    code, title = "insufficient_stock", "Not that many copies available"
