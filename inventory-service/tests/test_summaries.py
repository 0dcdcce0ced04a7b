"""Book summaries: made once per description and kept; the local provider in-process, the
`openai` one against an OpenAI-compatible server this test runs, with its failures (errors,
slowness, an open breaker) answered by the local summary."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from bookstore_testing.harness import assert_problem, serve_app
from inventory.config import Settings
from inventory.main import create_app
from inventory.summaries import SUMMARY_MAX_CHARS, local_summary

pytestmark = pytest.mark.usefixtures("anonymous_by_default")
CreateBook = Callable[..., Awaitable[dict[str, Any]]]
DESCRIPTION = (
    "Elizabeth Bennet lives with her sisters in a Hertfordshire village. "
    "The weather that spring is mild. "
    "Elizabeth meets the proud Mr. Darcy at a ball and takes against Darcy at once. "
    "Pride on one side and prejudice on the other keep Elizabeth and Darcy apart. "
    "Her mother plans dinners."
)


def test_the_local_summary_keeps_the_most_telling_sentences_in_their_order() -> None:
    summary = local_summary(DESCRIPTION)
    assert summary == (
        "Elizabeth meets the proud Mr. Darcy at a ball and takes against Darcy at once. "
        "Pride on one side and prejudice on the other keep Elizabeth and Darcy apart."
    )
    assert local_summary(DESCRIPTION) == summary  # deterministic
    assert local_summary("One sentence only.") == "One sentence only."
    long = " ".join(f"Sentence number {i} talks about whales and ships." for i in range(200))
    assert len(local_summary(long)) <= SUMMARY_MAX_CHARS


async def test_a_summary_is_kept_until_the_description_changes(
    client: httpx.AsyncClient, staff: dict[str, str], create_book: CreateBook
) -> None:
    book = await create_book(description=DESCRIPTION)
    first = await client.get(f"/books/{book['id']}/summary")
    assert first.status_code == 200, first.text
    summary = first.json()
    assert (summary["book_id"], summary["provider"], summary["model"]) == (
        book["id"],
        "local",
        None,
    )
    assert summary["summary"] == local_summary(DESCRIPTION)
    assert (await client.get(f"/books/{book['id']}/summary")).json() == summary  # kept

    changed = await client.patch(
        f"/books/{book['id']}",
        json={"description": "A short tale of a whale. Ahab hunts it."},
        headers=staff,
    )
    assert changed.status_code == 200
    again = (await client.get(f"/books/{book['id']}/summary")).json()
    assert again["summary"] == "A short tale of a whale. Ahab hunts it."
    assert again["generated_at"] > summary["generated_at"]


async def test_a_book_without_description_has_no_summary_and_unknown_books_none_at_all(
    client: httpx.AsyncClient, create_book: CreateBook
) -> None:
    book = await create_book(description=None)
    reply = (await client.get(f"/books/{book['id']}/summary")).json()
    assert (reply["summary"], reply["provider"]) == (None, "local")
    assert_problem(await client.get(f"/books/{uuid.uuid4()}/summary"), 404, "book_not_found")


# --- The openai provider, against a server of our own --------------------------------------


@dataclass
class FakeProvider:
    """An OpenAI-compatible chat-completions endpoint that answers as told."""

    answers: list[str] = field(default_factory=list)  # "ok", "500", "429", "slow", "garbled"
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"body": body, "authorization": request.headers.get("Authorization")})
        answer = self.answers.pop(0) if self.answers else "ok"
        if answer == "slow":
            await asyncio.sleep(2)
        if answer in ("500", "429"):
            return web.json_response({"error": {"message": "busy"}}, status=int(answer))
        if answer == "garbled":
            return web.json_response({"choices": []})
        text = f"A summary by {body['model']} of: {body['messages'][1]['content'][:20]}"
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": text}}]})


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}/v1"
    yield fake
    await runner.cleanup()


@pytest.fixture
async def openai_client(
    service_settings: dict[str, Any], provider: FakeProvider, anonymous: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        **service_settings,
        summary_provider="openai",
        summary_api_url=provider.url,
        summary_api_key="sk-test",
        summary_model="tiny-model",
        summary_timeout_seconds=0.5,
        summary_retries=2,
        summary_breaker_threshold=2,
        summary_breaker_ttl_seconds=60,
    )
    async with serve_app(create_app(settings)) as c:
        c.headers.update(anonymous)
        yield c


async def test_the_openai_provider_is_asked_once_per_description(
    openai_client: httpx.AsyncClient, provider: FakeProvider, create_book: CreateBook
) -> None:
    book = await create_book(description=DESCRIPTION)
    reply = (await openai_client.get(f"/books/{book['id']}/summary")).json()
    assert (reply["provider"], reply["model"]) == ("openai", "tiny-model")
    assert reply["summary"] == "A summary by tiny-model of: Pride and Prejudice,"
    (asked,) = provider.requests
    assert asked["authorization"] == "Bearer sk-test"
    assert DESCRIPTION in asked["body"]["messages"][1]["content"]
    assert (await openai_client.get(f"/books/{book['id']}/summary")).json() == reply
    assert len(provider.requests) == 1  # kept: not asked again


async def test_passing_failures_are_tried_again(
    openai_client: httpx.AsyncClient, provider: FakeProvider, create_book: CreateBook
) -> None:
    book = await create_book(description=DESCRIPTION)
    provider.answers = ["500", "429"]  # then ok
    reply = (await openai_client.get(f"/books/{book['id']}/summary")).json()
    assert reply["provider"] == "openai"
    assert len(provider.requests) == 3


async def test_a_failing_provider_gives_the_local_summary_which_is_not_kept(
    openai_client: httpx.AsyncClient, provider: FakeProvider, create_book: CreateBook
) -> None:
    book = await create_book(description=DESCRIPTION)
    provider.answers = ["slow", "slow", "slow"]  # each try outlasts the 0.5 s timeout
    reply = await openai_client.get(f"/books/{book['id']}/summary")
    assert reply.status_code == 200
    assert reply.headers["cache-control"] == "no-store"
    fallback = reply.json()
    assert (fallback["provider"], fallback["model"]) == ("local-fallback", None)
    assert fallback["summary"] == local_summary(DESCRIPTION)
    assert len(provider.requests) == 3

    provider.answers = []  # it works again: asked again, since the fallback was not kept
    assert (await openai_client.get(f"/books/{book['id']}/summary")).json()["provider"] == "openai"


async def test_after_repeated_failures_the_breaker_stops_asking(
    openai_client: httpx.AsyncClient, provider: FakeProvider, create_book: CreateBook
) -> None:
    books = [await create_book(isbn=isbn, description=DESCRIPTION) for isbn in ISBNS]
    provider.answers = ["garbled", "garbled"]  # two summaries fail: threshold 2
    for book in books[:2]:
        reply = (await openai_client.get(f"/books/{book['id']}/summary")).json()
        assert reply["provider"] == "local-fallback"
    asked = len(provider.requests)
    reply = (await openai_client.get(f"/books/{books[2]['id']}/summary")).json()
    assert reply["provider"] == "local-fallback"
    assert len(provider.requests) == asked  # the open breaker did not ask


ISBNS = ("9780141439518", "9780141439587", "9780141439662")
