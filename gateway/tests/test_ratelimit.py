"""Rate limits: per principal, per client IP, failed sign-ins; shared by replicas via Redis.

Request limits count in a sliding window of two counters, which lets a request more through when a
test happens to straddle the turn of a window; the request tests below use hour windows, so that
chance is one in thousands rather than one in tens. Sign-in limits are exact (a moving window)."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from bookstore_testing.harness import serve_app
from gateway.config import Settings
from gateway.main import create_app


@contextlib.asynccontextmanager
async def gateway_with(settings: Settings, **limits: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(create_app(settings.model_copy(update=limits))) as client:
        yield client


async def _register_and_sign_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    await client.post("/api/auth/register", json={"email": email, "password": "correct-horse"})
    reply = await client.post(
        "/api/auth/token", data={"username": email, "password": "correct-horse"}
    )
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


async def test_requests_over_the_ip_limit_get_429_with_retry_after(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    async with gateway_with(gateway_settings, rate_limit_per_ip="5/hour") as gateway:
        replies = [await gateway.get("/api/books") for _ in range(6)]
    assert [r.status_code for r in replies[:5]] == [200] * 5
    assert [r.headers["ratelimit-remaining"] for r in replies[:5]] == ["4", "3", "2", "1", "0"]
    refused = replies[5]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert refused.headers["ratelimit-limit"] == "5"


async def test_each_principal_has_its_own_limit(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    async with gateway_with(
        gateway_settings, rate_limit_per_principal="3/hour", rate_limit_per_ip="100/hour"
    ) as gateway:
        ann = await _register_and_sign_in(gateway, "ann@example.com")
        bob = await _register_and_sign_in(gateway, "bob@example.com")
        ann_replies = [(await gateway.get("/api/books", headers=ann)).status_code for _ in range(4)]
        bob_reply = await gateway.get("/api/books", headers=bob)
    assert ann_replies == [200, 200, 200, 429]
    assert bob_reply.status_code == 200


async def test_failed_sign_ins_are_limited_per_account(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    async with gateway_with(gateway_settings, login_failures_per_ip="100/minute") as gateway:
        await gateway.post(
            "/api/auth/register", json={"email": "ann@example.com", "password": "correct-horse"}
        )
        wrong = {"username": "ann@example.com", "password": "wrong-horse"}
        codes = [(await gateway.post("/api/auth/token", data=wrong)).status_code for _ in range(11)]
        # Even the right password waits now: guessing cannot tell the two apart.
        right = await gateway.post(
            "/api/auth/token", data={"username": "ann@example.com", "password": "correct-horse"}
        )
    assert codes == [401] * 10 + [429]
    assert right.status_code == 429
    assert right.headers["retry-after"]


async def test_failed_sign_ins_are_limited_per_ip_across_accounts(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    async with gateway_with(gateway_settings, login_failures_per_ip="3/minute") as gateway:
        codes = [
            (
                await gateway.post(
                    "/api/auth/token", data={"username": f"u{i}@example.com", "password": "x"}
                )
            ).status_code
            for i in range(4)
        ]
    assert codes == [401, 401, 401, 429]


async def test_replicas_sharing_redis_share_the_limit(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    shared = {"redis_url": "redis://127.0.0.1:6379/0", "rate_limit_per_ip": "4/hour"}
    async with (
        gateway_with(gateway_settings, **shared) as first,
        gateway_with(gateway_settings, **shared) as second,
    ):
        codes = [
            (await (first if i % 2 else second).get("/api/books")).status_code for i in range(5)
        ]
    assert codes == [200, 200, 200, 200, 429]


async def test_replicas_without_redis_count_alone(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    async with (
        gateway_with(gateway_settings, rate_limit_per_ip="2/hour") as first,
        gateway_with(gateway_settings, rate_limit_per_ip="2/hour") as second,
    ):
        codes = [(await first.get("/api/books")).status_code for _ in range(2)]
        codes += [(await second.get("/api/books")).status_code for _ in range(2)]
    assert codes == [200, 200, 200, 200]
