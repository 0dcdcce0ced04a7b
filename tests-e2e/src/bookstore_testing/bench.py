"""`make bench`: orders through the gateway, from POST to final status, under steady load.

    python -m bookstore_testing.bench [--clients 16] [--seconds 20] [--url http://...]

Without --url it starts its own stack (a fresh database and broker namespace, removed
afterwards). Each client places one order at a time with `Prefer: wait=30`, so the answer
comes when the saga is final; the time from POST to that answer is the order's latency.
Only loopback traffic; bounded by clients and seconds. Figures go to stdout and to a JSON file.
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

import httpx

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


async def with_own_stack(clients: int, seconds: float) -> dict[str, Any]:
    async with AsyncExitStack() as cleanup:
        infra = cleanup.enter_context(provide_infra())
        databases = Databases(infra)
        cleanup.push_async_callback(databases.drop_all)
        namespace = f"bookstore-bench-{databases.run_id}"
        password = secrets.token_urlsafe(12)
        stack = LocalStack(
            log_dir=Path(tempfile.mkdtemp(prefix="bookstore-bench-")),
            ports={app.name: free_port() for app in APPS},
            env={
                "DATABASE_URL": await databases.create("bench"),
                "AMQP_URL": infra.amqp_url,
                "BROKER_NAMESPACE": namespace,
                "IDENTITY_SECRET": secrets.token_hex(32),
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
        return await run(stack.url("gateway"), password, clients, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bookstore_testing.bench")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--url", help="a running gateway (default: start a stack of our own)")
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
        result = asyncio.run(run(args.url, args.password, args.clients, args.seconds))
    else:
        result = asyncio.run(with_own_stack(args.clients, args.seconds))
    result["run_id"] = uuid.uuid4().hex[:8]
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    latency = result["latency_ms"]
    print(
        f"\norders completed: {result['orders_final']} in {result['seconds']} s "
        f"= {result['orders_per_second']} orders/s with {result['clients']} clients\n"
        f"POST to final:    p50 {latency['p50']} ms, p95 {latency['p95']} ms, "
        f"p99 {latency['p99']} ms\n"
        f"confirmed:        {result['confirmed_share']:.1%}  {result['outcomes']}\n"
        f"machine:          {result['machine']['cpus']} CPUs (stack, broker, database and "
        f"load generator share them)\nwritten to {args.out}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
