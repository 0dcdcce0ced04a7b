"""Upstream failures at the gateway: refused, hung, broken; and replicas shared out."""

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from bookstore_testing.harness import free_port, serve_app
from bookstore_testing.shop import eventually
from gateway.config import Settings
from gateway.main import create_app


@contextlib.asynccontextmanager
async def echo_process() -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """The echo upstream in a process of its own, so that it can be frozen with SIGSTOP."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bookstore_testing.echo", str(port)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as probe:

            async def answers() -> bool:
                try:
                    return (await probe.get(f"{url}/ping")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(answers, within=20, what="the echo process to listen")
        yield url, process
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def _timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    reply = await call
    return reply, time.perf_counter() - started


async def test_hung_upstream_times_out_then_the_breaker_answers_at_once(
    gateway_settings: Settings, echo_url: str
) -> None:
    async with echo_process() as (hung_url, hung):
        settings = gateway_settings.model_copy(
            update={
                "inventory_url": hung_url,
                "sales_url": echo_url,
                "upstream_read_timeout": 1.0,
                "breaker_threshold": 2,
                "breaker_ttl_seconds": 30.0,
            }
        )
        async with serve_app(create_app(settings)) as gateway:
            hung.send_signal(signal.SIGSTOP)
            for _ in range(2):
                reply, took = await _timed(gateway.get("/api/books"))
                assert reply.status_code == 504
                assert reply.json()["code"] == "upstream_timeout"
                assert took < 1.0 + 0.5
            reply, took = await _timed(gateway.get("/api/books"))
            assert reply.status_code == 503
            assert reply.headers["retry-after"]
            assert took < 0.2  # the open breaker does not even try


async def test_healthy_app_stays_fast_while_another_hangs(
    gateway_settings: Settings, echo_url: str, customer_token: str
) -> None:
    async with echo_process() as (hung_url, hung):
        settings = gateway_settings.model_copy(
            update={
                "inventory_url": hung_url,
                "sales_url": echo_url,
                "upstream_read_timeout": 2.0,
            }
        )
        async with serve_app(create_app(settings)) as gateway:
            hung.send_signal(signal.SIGSTOP)
            auth = {"Authorization": f"Bearer {customer_token}"}
            slow = asyncio.create_task(gateway.get("/api/books"))
            await asyncio.sleep(0)
            fast, took = await _timed(gateway.get("/api/orders", headers=auth))
            assert fast.status_code == 200
            assert took < 0.5
            assert (await slow).status_code == 504


async def test_requests_are_spread_over_every_replica(
    gateway_settings: Settings, echo_url: str
) -> None:
    async with echo_process() as (second_url, _):
        settings = gateway_settings.model_copy(update={"inventory_url": f"{echo_url},{second_url}"})
        async with serve_app(create_app(settings)) as gateway:
            ports = {(await gateway.get("/api/books")).json()["port"] for _ in range(6)}
    assert ports == {int(echo_url.rsplit(":", 1)[1]), int(second_url.rsplit(":", 1)[1])}


async def test_a_replica_that_refuses_is_skipped(
    gateway_settings: Settings, echo_url: str, closed_url: str
) -> None:
    settings = gateway_settings.model_copy(update={"inventory_url": f"{closed_url},{echo_url}"})
    async with serve_app(create_app(settings)) as gateway:
        codes = [(await gateway.get("/api/books")).status_code for _ in range(6)]
    assert codes == [200] * 6


async def test_a_name_with_several_addresses_uses_those_that_answer(
    gateway_settings: Settings, echo_url: str
) -> None:
    # "localhost" resolves to 127.0.0.1 and (usually) ::1; the echo listens on 127.0.0.1 only.
    port = echo_url.rsplit(":", 1)[1]
    settings = gateway_settings.model_copy(update={"inventory_url": f"http://localhost:{port}"})
    async with serve_app(create_app(settings)) as gateway:
        replies = [await gateway.get("/api/books") for _ in range(4)]
    assert [r.status_code for r in replies] == [200] * 4
    assert replies[0].json()["headers"]["host"] == f"localhost:{port}"
