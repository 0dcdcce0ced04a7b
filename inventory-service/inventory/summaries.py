"""A short summary of each book's description, kept in Postgres until the description changes.

Two writers, chosen by `SUMMARY_PROVIDER`:
- `local` (the default): an extractive summary made in-process: the description's most
  telling sentences (by how often their words recur in it), in their order. Deterministic, no
  network, nothing to configure.
- `openai`: any OpenAI-compatible chat-completions endpoint (`SUMMARY_API_URL`,
  `SUMMARY_API_KEY`, `SUMMARY_MODEL`), each try bounded by a timeout, tried again on timeouts,
  429 and 5xx, behind a circuit breaker. When it fails, the answer is the local summary with
  `provider: "local-fallback"`; that one is not kept, so the provider is asked again next time.

A summary is kept with the hash of the description it was made from and who made it: it is
made again when the description changes or another provider or model is configured.
"""

import hashlib
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from bookstore_shared.columns import utcnow
from bookstore_shared.db import Database
from bookstore_shared.identity import CurrentPrincipal
from inventory.config import Settings
from inventory.errors import BookNotFound
from inventory.models import Book, BookSummary, BookSummaryPublic

log = structlog.get_logger(__name__)
BOOKS: Table = Book.__table__  # type: ignore[assignment]
SUMMARIES: Table = BookSummary.__table__  # type: ignore[assignment]
LOCAL, OPENAI, FALLBACK = "local", "openai", "local-fallback"
router = APIRouter(prefix="/books", tags=["books"])

# --- The local, extractive summary ---------------------------------------------------------

SUMMARY_SENTENCES = 2
SUMMARY_MAX_CHARS = 600
# A sentence ends at . ! or ? followed by a space and a capital, digit or opening quote (not
# after Mr. Mrs. Ms. Dr. St.).
_SENTENCE_END = re.compile(
    r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<=[.!?])\s+"
    r"(?=[\"'\u201c\u2018(]?[A-Z0-9])"
)
_WORD = re.compile(r"[a-z][a-z'\u2019-]+")
_STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "one",
        "two",
        "book",
        "books",
        "novel",
        "story",
    ]
)


def local_summary(description: str) -> str:
    """The description's `SUMMARY_SENTENCES` most telling sentences, in their order: each
    scored by how often its words (not the commonest English ones) recur in the whole text,
    per word, so long sentences do not win by length alone; ties go to the earlier one."""
    text = " ".join(description.split())
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    if len(sentences) <= SUMMARY_SENTENCES:
        return _clip(text)
    words = [_words(s) for s in sentences]
    frequency = Counter(w for sentence in words for w in sentence)

    def score(index: int) -> float:
        telling = [frequency[w] for w in words[index]]
        return sum(telling) / (len(telling) or 1) ** 0.5

    best = sorted(range(len(sentences)), key=lambda i: (-score(i), i))[:SUMMARY_SENTENCES]
    return _clip(" ".join(sentences[i] for i in sorted(best)))


def _words(sentence: str) -> list[str]:
    return [w for w in _WORD.findall(sentence.lower()) if w not in _STOPWORDS]


def _clip(text: str) -> str:
    if len(text) <= SUMMARY_MAX_CHARS:
        return text
    return text[: SUMMARY_MAX_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


# --- Providers -----------------------------------------------------------------------------


class ProviderFailed(Exception):
    """The provider gave no summary (after its tries, or its breaker is open)."""


@dataclass(frozen=True)
class Summary:
    text: str | None
    provider: str
    model: str | None


class Provider(Protocol):
    name: str
    model: str | None

    async def summarize(self, *, title: str, author: str, description: str) -> str: ...

    async def close(self) -> None: ...


class LocalProvider:
    name, model = LOCAL, None

    async def summarize(self, *, title: str, author: str, description: str) -> str:
        return local_summary(description)

    async def close(self) -> None:
        pass


_INSTRUCTIONS = (
    "You write the short summary a bookstore shows under a book's title. Summarise the "
    "description you are given in at most two sentences, in plain English, without spoilers, "
    "without praise the description does not make, and without saying that it is a summary."
)


def _worth_another_try(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)  # timeouts, refused connections, resets


class OpenAIProvider:
    """An OpenAI-compatible `POST {url}/chat/completions`."""

    name = OPENAI

    def __init__(self, settings: Settings) -> None:
        key = settings.summary_api_key
        self.model: str | None = settings.summary_model
        self.url = settings.summary_api_url.rstrip("/") + "/chat/completions"
        self.retries = settings.summary_retries
        self.client = httpx.AsyncClient(
            timeout=settings.summary_timeout_seconds,
            headers={"Authorization": f"Bearer {key.get_secret_value()}"} if key else {},
        )
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=settings.summary_breaker_threshold,
            default_ttl=settings.summary_breaker_ttl_seconds,
        )

    async def summarize(self, *, title: str, author: str, description: str) -> str:
        try:
            async with await self.breakers.get_breaker(self.url):
                return await self._ask(title=title, author=author, description=description)
        except OpenedState as exc:
            raise ProviderFailed("the provider failed repeatedly: not asked for now") from exc
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderFailed(f"{type(exc).__name__}: {exc}") from exc

    async def _ask(self, *, title: str, author: str, description: str) -> str:
        body = {
            "model": self.model,
            "temperature": 0,
            "max_tokens": 200,
            "messages": [
                {"role": "system", "content": _INSTRUCTIONS},
                {"role": "user", "content": f"{title}, by {author}.\n\n{description}"},
            ],
        }
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_worth_another_try),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=0.2, max=2),
            reraise=True,
        ):
            with attempt:
                response = await self.client.post(self.url, json=body)
                response.raise_for_status()
        answer: Any = response.json()
        text = str(answer["choices"][0]["message"]["content"]).strip()
        if not text:
            raise ValueError("the provider answered an empty summary")
        return _clip(text)

    async def close(self) -> None:
        await self.client.aclose()


def provider_from(settings: Settings) -> Provider:
    return OpenAIProvider(settings) if settings.summary_provider == OPENAI else LocalProvider()


# --- Kept summaries ------------------------------------------------------------------------


def _sha256(description: str | None) -> str:
    return hashlib.sha256((description or "").encode()).hexdigest()


async def book_summary(
    db: Database, provider: Provider, *, book_id: uuid.UUID
) -> BookSummaryPublic:
    """The kept summary if it was made from this description by this provider and model;
    else a new one, kept (unless it is a fallback). No connection is held while a provider
    thinks: read, then ask, then write."""
    async with db.reads() as session:
        book = (
            await session.execute(
                select(BOOKS.c.title, BOOKS.c.author, BOOKS.c.description).where(
                    BOOKS.c.id == book_id, BOOKS.c.deleted_at.is_(None)
                )
            )
        ).first()
        if book is None:
            raise BookNotFound(f"No book with id {book_id}.")
        kept = (
            (await session.execute(select(SUMMARIES).where(SUMMARIES.c.book_id == book_id)))
            .mappings()
            .first()
        )
    digest = _sha256(book.description)
    made_by = (digest, provider.name, provider.model)
    if (
        kept is not None
        and (kept["description_sha256"], kept["provider"], kept["model"]) == made_by
    ):
        return BookSummaryPublic.model_validate(dict(kept))
    summary = await _summarize(provider, book.title, book.author, book.description)
    row = {
        "book_id": book_id,
        "description_sha256": digest,
        "summary": summary.text,
        "provider": summary.provider,
        "model": summary.model,
        "generated_at": utcnow(),
    }
    if summary.provider != FALLBACK:
        async with db.unit_of_work() as session:
            await session.execute(
                insert(SUMMARIES)
                .values(row)
                .on_conflict_do_update(index_elements=[SUMMARIES.c.book_id], set_=row)
            )
    return BookSummaryPublic.model_validate(row)


async def _summarize(
    provider: Provider, title: str, author: str, description: str | None
) -> Summary:
    if not description or not description.strip():
        return Summary(None, provider.name, provider.model)  # nothing to summarise
    try:
        text = await provider.summarize(title=title, author=author, description=description)
    except ProviderFailed as exc:
        log.warning("summary_provider_failed", provider=provider.name, error=str(exc))
        return Summary(local_summary(description), FALLBACK, None)
    return Summary(text, provider.name, provider.model)


@asynccontextmanager
async def summaries(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The app's summary provider on `app.state`, for the app's lifetime."""
    app.state.summaries = provider = provider_from(settings)
    try:
        yield
    finally:
        await provider.close()


@router.get("/{book_id}/summary")
async def get_summary(
    book_id: uuid.UUID, request: Request, principal: CurrentPrincipal, response: Response
) -> BookSummaryPublic:
    """A short summary of the book's description (null if it has none), and what wrote it:
    `local`, `openai`, or `local-fallback` when the configured provider failed."""
    app = request.app
    summary = await book_summary(app.state.db, app.state.summaries, book_id=book_id)
    # The same for everyone; a fallback may be bettered soon, so it is not kept by caches.
    shared = summary.provider != FALLBACK
    response.headers["Cache-Control"] = "public, max-age=60" if shared else "no-store"
    return summary
