"""The demo catalog: real books with their real ISBNs and descriptions (in
`demo_descriptions.json`, by ISBN). Loading it twice changes nothing."""

import json
from pathlib import Path

from sqlalchemy import String, Table, func, update
from sqlalchemy.dialects.postgresql import insert

from bookstore_shared.db import Database
from bookstore_shared.settings import ServiceSettings
from bookstore_shared.writes import arrays, unnest
from inventory.models import Book
from inventory.service import book_changed, outbox

# (isbn, title, author, category, price in cents, stock)
CATALOG: tuple[tuple[str, str, str, str, int, int], ...] = (
    ("9780141439518", "Pride and Prejudice", "Jane Austen", "Classics", 899, 12),
    ("9780141439587", "Emma", "Jane Austen", "Classics", 899, 7),
    ("9780141439662", "Sense and Sensibility", "Jane Austen", "Classics", 899, 4),
    ("9780141439686", "Persuasion", "Jane Austen", "Classics", 799, 9),
    ("9780141439600", "A Tale of Two Cities", "Charles Dickens", "Classics", 999, 15),
    ("9780141439570", "The Picture of Dorian Gray", "Oscar Wilde", "Classics", 799, 11),
    ("9780141439846", "Dracula", "Bram Stoker", "Classics", 899, 3),
    ("9780141441146", "Jane Eyre", "Charlotte Brontë", "Classics", 899, 14),
    ("9780141439556", "Wuthering Heights", "Emily Brontë", "Classics", 799, 0),
    ("9780141439471", "Frankenstein", "Mary Shelley", "Classics", 799, 18),
    ("9780142437230", "Don Quixote", "Miguel de Cervantes", "Classics", 1899, 5),
    ("9780140449136", "Crime and Punishment", "Fyodor Dostoyevsky", "Classics", 1299, 8),
    ("9780140449266", "The Count of Monte Cristo", "Alexandre Dumas", "Classics", 1599, 6),
    ("9780143035008", "Anna Karenina", "Leo Tolstoy", "Classics", 1800, 10),
    ("9780142437247", "Moby-Dick", "Herman Melville", "Classics", 1300, 2),
    ("9780486280615", "Adventures of Huckleberry Finn", "Mark Twain", "Classics", 450, 20),
    ("9780061120084", "To Kill a Mockingbird", "Harper Lee", "Fiction", 1099, 25),
    ("9780743273565", "The Great Gatsby", "F. Scott Fitzgerald", "Fiction", 1000, 30),
    ("9780316769488", "The Catcher in the Rye", "J. D. Salinger", "Fiction", 999, 13),
    ("9780143039433", "The Grapes of Wrath", "John Steinbeck", "Fiction", 1800, 6),
    ("9780307387899", "The Road", "Cormac McCarthy", "Fiction", 1600, 9),
    ("9780307389732", "Love in the Time of Cholera", "Gabriel García Márquez", "Fiction", 1700, 4),
    (
        "9780060883287",
        "One Hundred Years of Solitude",
        "Gabriel García Márquez",
        "Fiction",
        1799,
        12,
    ),
    ("9780679720201", "The Stranger", "Albert Camus", "Fiction", 1500, 7),
    ("9780679732761", "Invisible Man", "Ralph Ellison", "Fiction", 1700, 5),
    ("9781400033416", "Beloved", "Toni Morrison", "Fiction", 1700, 8),
    ("9780140283297", "On the Road", "Jack Kerouac", "Fiction", 1700, 0),
    ("9780684801223", "The Old Man and the Sea", "Ernest Hemingway", "Fiction", 1500, 16),
    ("9780060838676", "Their Eyes Were Watching God", "Zora Neale Hurston", "Fiction", 1699, 6),
    ("9781594631931", "The Kite Runner", "Khaled Hosseini", "Fiction", 1700, 19),
    ("9781476746586", "All the Light We Cannot See", "Anthony Doerr", "Fiction", 1899, 11),
    ("9780525559474", "The Midnight Library", "Matt Haig", "Fiction", 2600, 22),
    ("9780062315007", "The Alchemist", "Paulo Coelho", "Fiction", 1699, 28),
    ("9780156012195", "The Little Prince", "Antoine de Saint-Exupéry", "Fiction", 1099, 17),
    ("9780451524935", "1984", "George Orwell", "Science Fiction", 999, 40),
    ("9780451526342", "Animal Farm", "George Orwell", "Science Fiction", 799, 35),
    ("9780060850524", "Brave New World", "Aldous Huxley", "Science Fiction", 1799, 10),
    ("9780385490818", "The Handmaid's Tale", "Margaret Atwood", "Science Fiction", 1695, 14),
    (
        "9780345391803",
        "The Hitchhiker's Guide to the Galaxy",
        "Douglas Adams",
        "Science Fiction",
        899,
        21,
    ),
    ("9780441172719", "Dune", "Frank Herbert", "Science Fiction", 1099, 24),
    ("9780553293357", "Foundation", "Isaac Asimov", "Science Fiction", 899, 3),
    ("9780553418026", "The Martian", "Andy Weir", "Science Fiction", 1700, 12),
    ("9780547928227", "The Hobbit", "J. R. R. Tolkien", "Fantasy", 1499, 26),
    ("9780544003415", "The Lord of the Rings", "J. R. R. Tolkien", "Fantasy", 2999, 8),
    (
        "9780439708180",
        "Harry Potter and the Sorcerer's Stone",
        "J. K. Rowling",
        "Fantasy",
        1099,
        50,
    ),
    ("9780553573404", "A Game of Thrones", "George R. R. Martin", "Fantasy", 999, 15),
    ("9780765326355", "The Way of Kings", "Brandon Sanderson", "Fantasy", 2999, 1),
    ("9780756404741", "The Name of the Wind", "Patrick Rothfuss", "Fantasy", 1899, 9),
    ("9780439023481", "The Hunger Games", "Suzanne Collins", "Young Adult", 1499, 30),
    ("9780316015844", "Twilight", "Stephenie Meyer", "Young Adult", 1399, 0),
    ("9780375842207", "The Book Thief", "Markus Zusak", "Young Adult", 1399, 13),
    ("9780385737951", "The Maze Runner", "James Dashner", "Young Adult", 1099, 4),
    (
        "9780062073488",
        "And Then There Were None",
        "Agatha Christie",
        "Mystery & Thriller",
        1599,
        18,
    ),
    ("9780307474278", "The Da Vinci Code", "Dan Brown", "Mystery & Thriller", 1000, 27),
    ("9780307588371", "Gone Girl", "Gillian Flynn", "Mystery & Thriller", 1700, 10),
    (
        "9780307454546",
        "The Girl with the Dragon Tattoo",
        "Stieg Larsson",
        "Mystery & Thriller",
        1700,
        2,
    ),
    ("9780679745587", "In Cold Blood", "Truman Capote", "Mystery & Thriller", 1700, 5),
    ("9780062316097", "Sapiens", "Yuval Noah Harari", "History", 2499, 20),
    ("9780393317558", "Guns, Germs, and Steel", "Jared Diamond", "History", 2195, 7),
    ("9780553380163", "A Brief History of Time", "Stephen Hawking", "Science", 1800, 11),
    ("9781400052189", "The Immortal Life of Henrietta Lacks", "Rebecca Skloot", "Science", 1800, 6),
    ("9780374533557", "Thinking, Fast and Slow", "Daniel Kahneman", "Science", 2000, 15),
    ("9780399590504", "Educated", "Tara Westover", "Biography", 2800, 12),
    ("9781524763138", "Becoming", "Michelle Obama", "Biography", 3250, 0),
    ("9780735211292", "Atomic Habits", "James Clear", "Self-Help", 2799, 33),
    ("9780062457714", "The Subtle Art of Not Giving a F*ck", "Mark Manson", "Self-Help", 2499, 3),
    (
        "9780131103627",
        "The C Programming Language",
        "Brian W. Kernighan, Dennis M. Ritchie",
        "Computing",
        6799,
        6,
    ),
    (
        "9780262033848",
        "Introduction to Algorithms",
        "Thomas H. Cormen et al.",
        "Computing",
        9900,
        4,
    ),
    (
        "9780201633610",
        "Design Patterns",
        "Erich Gamma, Richard Helm, Ralph Johnson, John Vlissides",
        "Computing",
        5999,
        5,
    ),
    ("9780132350884", "Clean Code", "Robert C. Martin", "Computing", 4999, 10),
    (
        "9780201616224",
        "The Pragmatic Programmer",
        "Andrew Hunt, David Thomas",
        "Computing",
        4999,
        8,
    ),
    (
        "9781449373320",
        "Designing Data-Intensive Applications",
        "Martin Kleppmann",
        "Computing",
        5999,
        14,
    ),
    (
        "9780596007126",
        "Head First Design Patterns",
        "Eric Freeman, Elisabeth Robson",
        "Computing",
        4499,
        0,
    ),
    ("9781492056355", "Fluent Python", "Luciano Ramalho", "Computing", 6999, 9),
    ("9780134685991", "Effective Java", "Joshua Bloch", "Computing", 5499, 7),
    ("9780201835953", "The Mythical Man-Month", "Frederick P. Brooks Jr.", "Computing", 3999, 2),
)


DESCRIPTIONS: dict[str, str] = json.loads(
    (Path(__file__).parent / "demo_descriptions.json").read_text(encoding="utf-8")
)
# Catalogs seeded before the descriptions were written hold "<title> by <author>." instead.
BOOKS: Table = Book.__table__  # type: ignore[assignment]
_PLACEHOLDER = BOOKS.c.title + " by " + func.rtrim(BOOKS.c.author, ".") + "."
_TEXT = {"isbn": String(), "description": String()}
_text = unnest("text", _TEXT)
_FILL_IN = (
    update(BOOKS)
    .where(BOOKS.c.isbn == _text.c.isbn, BOOKS.c.description == _PLACEHOLDER)
    .values(description=_text.c.description, updated_at=func.now())
)


async def seed_catalog(settings: ServiceSettings) -> str:
    db = Database(settings.database_url, pool_size=1)
    rows = [
        {
            "isbn": isbn,
            "title": title,
            "author": author,
            "category": category,
            "description": DESCRIPTIONS[isbn],
            "price_cents": price,
            "available": stock,
        }
        for isbn, title, author, category, price, stock in CATALOG
    ]
    try:
        async with db.unit_of_work() as session:
            added_books = (
                await session.execute(
                    insert(Book)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["isbn"])
                    .returning(
                        Book.id, Book.title, Book.price_cents, Book.deleted_at, Book.updated_at
                    )
                )
            ).all()
            await outbox.add_all(session, [book_changed(book) for book in added_books])
            added = len(added_books)
            texts = [{"isbn": isbn, "description": text} for isbn, text in DESCRIPTIONS.items()]
            filled = await session.execute(_FILL_IN, arrays("text", _TEXT, texts))
    finally:
        await db.dispose()
    said = f"catalog seeded: {added} books added, {len(CATALOG) - added} already present"
    return said + (f", {filled.rowcount} descriptions filled in" if filled.rowcount else "")
