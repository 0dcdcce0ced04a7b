"""The hop from the gateway to the apps: stale pooled connections, refused replicas, breakers
that judge only the upstream, and waits longer than the read timeout."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from bookstore_testing.harness import serve_app
from bookstore_testing.rawupstream import RawUpstream
from gateway.config import Settings
from gateway.main import create_app


@contextlib.asynccontextmanager
async def gateway_in_front_of(
    settings: Settings, **upstreams: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(create_app(settings.model_copy(update=upstreams))) as client:
        yield client


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    key: bool = False


CALLS = [
    Call("GET", "/api/books"),
    Call("GET", "/api/orders"),
    Call("POST", "/api/orders", key=True),
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.method}{'+key' if c.key else ''}")
async def test_stale_pooled_connection_is_resent_on_a_fresh_one(
    gateway_settings: Settings, customer_token: str, call: Call
) -> None:
    async with (
        RawUpstream(answer_per_connection=1).running() as upstream,
        gateway_in_front_of(
            gateway_settings, inventory_url=upstream.url, sales_url=upstream.url
        ) as gateway,
    ):
        statuses = []
        for i in range(6):  # every call after the first meets a connection being dropped
            headers = {"Authorization": f"Bearer {customer_token}"}
            if call.key:
                headers["Idempotency-Key"] = f"key-{i}"
            reply = await gateway.request(call.method, call.path, headers=headers, json={})
            statuses.append(reply.status_code)
    assert statuses == [200] * 6
    assert upstream.dropped >= 3  # stale connections were really met (every other call)
    assert upstream.answered[call.method] == 6  # and every request was answered once


async def test_post_without_idempotency_key_is_not_sent_twice(
    gateway_settings: Settings, customer_token: str
) -> None:
    async with (
        RawUpstream(answer_per_connection=1).running() as upstream,
        gateway_in_front_of(gateway_settings, sales_url=upstream.url) as gateway,
    ):
        auth = {"Authorization": f"Bearer {customer_token}"}
        first = await gateway.post("/api/orders", headers=auth, json={})
        second = await gateway.post("/api/orders", headers=auth, json={})
    assert first.status_code == 200
    # The app may have acted on it before the connection broke: only the client may retry.
    assert second.status_code == 503
    assert second.json()["code"] == "upstream_unavailable"
    assert upstream.answered["POST"] == 1


async def test_refused_replica_is_skipped_for_a_post_too(
    gateway_settings: Settings, customer_token: str, closed_url: str
) -> None:
    async with (
        RawUpstream().running() as upstream,
        gateway_in_front_of(gateway_settings, sales_url=f"{closed_url},{upstream.url}") as gateway,
    ):
        auth = {"Authorization": f"Bearer {customer_token}"}
        codes = [
            (await gateway.post("/api/orders", headers=auth, json={})).status_code for _ in range(6)
        ]
    assert codes == [200] * 6
    assert upstream.answered["POST"] == 6


async def test_client_errors_never_open_the_breaker(
    gateway_settings: Settings, customer_token: str, echo_url: str
) -> None:
    settings = gateway_settings.model_copy(update={"breaker_threshold": 3})
    auth = {"Authorization": f"Bearer {customer_token}", "content-type": "text/plain"}

    async def oversized() -> AsyncIterator[bytes]:  # no Content-Length: found out while read
        for _ in range(20):
            yield b"x" * 65_536

    async with gateway_in_front_of(settings, sales_url=echo_url) as gateway:
        refused = [
            (await gateway.post("/api/orders", content=oversized(), headers=auth)).status_code
            for _ in range(10)
        ]
        good = await gateway.post("/api/orders", content=b"{}", headers=auth)
    assert refused == [413] * 10
    assert good.status_code == 200


async def test_a_failing_replica_is_cut_off_while_the_other_serves(
    gateway_settings: Settings, customer_token: str
) -> None:
    settings = gateway_settings.model_copy(
        update={"breaker_threshold": 3, "breaker_ttl_seconds": 60.0}
    )
    async with (
        RawUpstream(status=500).running() as failing,
        RawUpstream().running() as healthy,
        gateway_in_front_of(settings, inventory_url=f"{failing.url},{healthy.url}") as gateway,
    ):
        codes = [(await gateway.get("/api/books")).status_code for _ in range(20)]
    # The failing replica's own answers pass through until its breaker opens; after that
    # every request goes to the healthy one, and no one is told the app is unavailable.
    assert codes.count(500) == 3
    assert codes.count(200) == 17
    assert failing.answered["GET"] == 3


async def test_prefer_wait_longer_than_the_read_timeout_is_waited_for(
    gateway_settings: Settings, customer_token: str
) -> None:
    settings = gateway_settings.model_copy(update={"upstream_read_timeout": 0.5})
    auth = {"Authorization": f"Bearer {customer_token}"}
    async with (
        RawUpstream(delay=1.5).running() as slow,
        gateway_in_front_of(settings, sales_url=slow.url) as gateway,
    ):
        waited = await gateway.post("/api/orders", headers={**auth, "Prefer": "wait=2"}, json={})
        plain = await gateway.post("/api/orders", headers=auth, json={})
    assert waited.status_code == 200
    assert plain.status_code == 504
    assert plain.json()["code"] == "upstream_timeout"
