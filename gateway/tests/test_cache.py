"""The gateway's shared cache: public answers are kept for their max-age and shared by
everyone but staff; private ones never are; If-None-Match gets a 304 from the cache."""

import contextlib
from collections.abc import AsyncIterator

import httpx

from bookstore_testing.harness import serve_app
from bookstore_testing.rawupstream import RawUpstream
from gateway.config import Settings
from gateway.main import create_app

PUBLIC = {"Cache-Control": "public, max-age=60", "ETag": 'W/"v1"'}


@contextlib.asynccontextmanager
async def gateway_before(
    settings: Settings, upstream: RawUpstream
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(
        create_app(settings.model_copy(update={"inventory_url": upstream.url}))
    ) as client:
        yield client


async def test_public_answer_is_shared_by_anonymous_callers_and_customers(
    gateway_settings: Settings, customer_token: str
) -> None:
    async with (
        RawUpstream(headers=PUBLIC).running() as upstream,
        gateway_before(gateway_settings, upstream) as gateway,
    ):
        anonymous = [await gateway.get("/api/books/1") for _ in range(3)]
        customer = await gateway.get(
            "/api/books/1", headers={"Authorization": f"Bearer {customer_token}"}
        )
        other_page = await gateway.get("/api/books/2")
    assert [r.status_code for r in [*anonymous, customer, other_page]] == [200] * 5
    assert upstream.answered["GET"] == 2  # /books/1 once, /books/2 once
    assert anonymous[2].headers["age"] == "0"
    assert anonymous[2].json() == anonymous[0].json()


async def test_revalidation_against_the_kept_etag_is_a_304(gateway_settings: Settings) -> None:
    async with (
        RawUpstream(headers=PUBLIC).running() as upstream,
        gateway_before(gateway_settings, upstream) as gateway,
    ):
        first = await gateway.get("/api/books/1")
        again = await gateway.get("/api/books/1", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["etag"] == 'W/"v1"'
    assert again.content == b""
    assert upstream.answered["GET"] == 1


async def test_staff_never_get_or_leave_a_shared_answer(
    gateway_settings: Settings, staff_token: str
) -> None:
    staff = {"Authorization": f"Bearer {staff_token}"}
    async with (
        RawUpstream(headers=PUBLIC).running() as upstream,
        gateway_before(gateway_settings, upstream) as gateway,
    ):
        await gateway.get("/api/books/1", headers=staff)
        await gateway.get("/api/books/1")
        await gateway.get("/api/books/1", headers=staff)
    assert upstream.answered["GET"] == 3


async def test_private_answers_are_never_kept(gateway_settings: Settings) -> None:
    private = {"Cache-Control": "private, max-age=60"}
    async with (
        RawUpstream(headers=private).running() as upstream,
        gateway_before(gateway_settings, upstream) as gateway,
    ):
        for _ in range(3):
            assert (await gateway.get("/api/books/1")).status_code == 200
    assert upstream.answered["GET"] == 3
