"""`make bench`: two measurements, each under steady load from a bounded number of clients.

    python -m bookstore_testing.bench [--clients 16] [--seconds 20] [--only orders|gateway]

- orders: each client places one order at a time with `Prefer: wait=30`, so the answer comes
  when the saga is final; the time from POST to that answer is the order's latency.
- gateway: `GET /api/books/{id}` through the gateway, and straight to inventory with a valid
  identity assertion, from the same client in the same run, in alternating phases.

It starts its own stack (a fresh database and broker namespace, removed afterwards). Only
loopback traffic; bounded by clients and seconds. Figures go to stdout and to a JSON file.
"""

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bookstore_shared.identity import ASSERTION_HEADER, IdentitySigner
from bookstore_shared.messaging import Broker
from bookstore_shared.stack import APPS, LocalStack
from bookstore_testing.harness import free_port
from bookstore_testing.infra import Databases, provide_infra
from bookstore_testing.shop import Shop, order_body

BOOKS = 20
STOCK_PER_BOOK = 1_000_000


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def _place_orders(
    gateway: httpx.AsyncClient,
    customer: dict[str, str],
    books: list[str],
    deadline: float,
    latencies: list[float],
    outcomes: list[str],
    client: int,
) -> None:
    turn = client
    while time.perf_counter() < deadline:
        turn += 1
        body = order_body([(books[turn % len(books)], 1), (books[(turn * 7 + 3) % len(books)], 1)])
        started = time.perf_counter()
        reply = await gateway.post(
            "/api/orders", json=body, headers={**customer, "Prefer": "wait=30"}, timeout=40
        )
        if reply.status_code == 201:
            latencies.append(time.perf_counter() - started)
            outcomes.append(reply.json()["status"])
        else:
            outcomes.append(f"http_{reply.status_code}")


async def run(url: str, staff_password: str, clients: int, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as gateway:
        token = await gateway.post(
            "/api/auth/token",
            data={"username": "staff@bookstore.local", "password": staff_password},
        )
        token.raise_for_status()
        shop = Shop(gateway, {"Authorization": f"Bearer {token.json()['access_token']}"})
        print(f"preparing {BOOKS} books and {clients} customers ...", flush=True)
        books = [await shop.new_book(stock=STOCK_PER_BOOK, price_cents=999) for _ in range(BOOKS)]
        customers = [await shop.new_customer() for _ in range(clients)]

        # A short warm-up, not measured: connection pools, caches, JIT-free but import-heavy paths.
        warm: list[float] = []
        await asyncio.gather(
            *(
                _place_orders(gateway, customers[i], books, time.perf_counter() + 2, warm, [], i)
                for i in range(clients)
            )
        )
        print(f"measuring {clients} clients for {seconds:.0f} s ...", flush=True)
        latencies: list[float] = []
        outcomes: list[str] = []
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(
                _place_orders(gateway, customers[i], books, deadline, latencies, outcomes, i)
                for i in range(clients)
            )
        )
        elapsed = time.perf_counter() - started

    completed = len(latencies)
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "orders_sent": len(outcomes),
        "orders_final": completed,
        "orders_per_second": round(completed / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 1),
            "p95": round(percentile(latencies, 95) * 1000, 1),
            "p99": round(percentile(latencies, 99) * 1000, 1),
        },
        "confirmed_share": round(outcomes.count("confirmed") / max(len(outcomes), 1), 4),
        "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }


async def _hammer(url: str, headers: dict[str, str], clients: int, seconds: float) -> list[float]:
    """Latencies of back-to-back GETs from `clients` connections for `seconds`."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url, headers=headers) as reply:
                    await reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"{url} answered {reply.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def _summary(latencies: list[float], seconds: float) -> dict[str, float]:
    return {
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


async def gateway_overhead(
    stack: LocalStack, identity_secret: str, clients: int, seconds: float
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.url("gateway")) as gateway:
        book_id = (await gateway.get("/api/books?size=1")).json()["data"][0]["id"]
    via_gateway = f"{stack.url('gateway')}/api/books/{book_id}"
    direct = f"{stack.url('inventory')}/books/{book_id}"
    signer = IdentitySigner(identity_secret, ttl_seconds=120)
    phases = 4
    phase = seconds / phases
    print(f"gateway overhead: {clients} clients, {phases} alternating phases ...", flush=True)
    await _hammer(via_gateway, {}, clients, 1.0)  # warm-up
    gateway_latencies: list[float] = []
    direct_latencies: list[float] = []
    for _ in range(phases // 2):
        assertion = {ASSERTION_HEADER: signer.sign(user_id=None, roles=(), request_id=None)}
        direct_latencies += await _hammer(direct, assertion, clients, phase)
        gateway_latencies += await _hammer(via_gateway, {}, clients, phase)
    half = seconds / 2
    through, straight = _summary(gateway_latencies, half), _summary(direct_latencies, half)
    return {
        "clients": clients,
        "via_gateway": through,
        "direct": straight,
        "throughput_ratio": round(
            through["requests_per_second"] / straight["requests_per_second"], 3
        ),
        "added_p50_ms": round(through["p50_ms"] - straight["p50_ms"], 2),
    }


async def with_own_stack(clients: int, seconds: float, only: str | None) -> dict[str, Any]:
    async with AsyncExitStack() as cleanup:
        infra = cleanup.enter_context(provide_infra())
        databases = Databases(infra)
        cleanup.push_async_callback(databases.drop_all)
        namespace = f"bookstore-bench-{databases.run_id}"
        password = secrets.token_urlsafe(12)
        identity_secret = secrets.token_hex(32)
        stack = LocalStack(
            log_dir=Path(tempfile.mkdtemp(prefix="bookstore-bench-")),
            ports={app.name: free_port() for app in APPS},
            env={
                "DATABASE_URL": await databases.create("bench"),
                "AMQP_URL": infra.amqp_url,
                "BROKER_NAMESPACE": namespace,
                "IDENTITY_SECRET": identity_secret,
                "JWT_SECRET": secrets.token_hex(32),
                "DEMO_PASSWORD": password,
                "LOG_LEVEL": "WARNING",
                "RATE_LIMIT_PER_IP": "1000000/minute",
                "RATE_LIMIT_PER_PRINCIPAL": "1000000/minute",
            },
        )

        async def remove_namespace() -> None:
            broker = Broker(infra.amqp_url, namespace=namespace)
            await broker.connect()
            await broker.delete_namespace()
            await broker.close()

        cleanup.push_async_callback(remove_namespace)
        print("starting the stack ...", flush=True)
        await asyncio.to_thread(stack.migrate)
        await asyncio.to_thread(stack.seed)
        stack.start()
        cleanup.callback(stack.stop)
        await asyncio.to_thread(stack.wait_ready, 90.0)
        result: dict[str, Any] = {}
        if only in (None, "gateway"):
            result["gateway"] = await gateway_overhead(stack, identity_secret, clients, seconds)
        if only in (None, "orders"):
            result["orders"] = await run(stack.url("gateway"), password, clients, seconds)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bookstore_testing.bench")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--only", choices=["orders", "gateway"], help="one measurement only")
    parser.add_argument("--url", help="orders against a running gateway instead of our own stack")
    parser.add_argument(
        "--password",
        default=os.environ.get("DEMO_PASSWORD", "bookstore-demo"),
        help="the staff demo password of the running stack (with --url)",
    )
    parser.add_argument("--out", default="bench-results.json")
    args = parser.parse_args()
    if not 1 <= args.clients <= 256 or not 1 <= args.seconds <= 600:
        parser.error("--clients must be 1..256 and --seconds 1..600")
    if args.url:
        result = {"orders": asyncio.run(run(args.url, args.password, args.clients, args.seconds))}
    else:
        result = asyncio.run(with_own_stack(args.clients, args.seconds, args.only))
    result["run_id"] = uuid.uuid4().hex[:8]
    result["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print()
    if gateway := result.get("gateway"):
        g, d = gateway["via_gateway"], gateway["direct"]
        print(
            f"GET /api/books/{{id}} with {gateway['clients']} clients:\n"
            f"  via gateway:  {g['requests_per_second']} req/s, p50 {g['p50_ms']} ms, "
            f"p99 {g['p99_ms']} ms\n"
            f"  direct:       {d['requests_per_second']} req/s, p50 {d['p50_ms']} ms, "
            f"p99 {d['p99_ms']} ms\n"
            f"  gateway keeps {gateway['throughput_ratio']:.0%} of direct throughput, "
            f"adds {gateway['added_p50_ms']} ms at p50",
            flush=True,
        )
    if orders := result.get("orders"):
        latency = orders["latency_ms"]
        print(
            f"orders completed: {orders['orders_final']} in {orders['seconds']} s "
            f"= {orders['orders_per_second']} orders/s with {orders['clients']} clients\n"
            f"  POST to final: p50 {latency['p50']} ms, p95 {latency['p95']} ms, "
            f"p99 {latency['p99']} ms\n"
            f"  confirmed: {orders['confirmed_share']:.1%}  {orders['outcomes']}",
            flush=True,
        )
    print(
        f"machine: {os.cpu_count()} CPUs, shared by the stack, broker, database and the load "
        f"generator\nwritten to {args.out}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
