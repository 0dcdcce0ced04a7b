"""Orders placed back to back: N signed-in customers, each placing one order after another
with `Prefer: wait=30` for a while, timed. What `make bench` measures orders with, alone
(`bench.orders`) or side by side with another revision (`against`)."""

import asyncio
import os
import statistics
import time
from pathlib import Path

import httpx

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


def order_client(url: str, clients: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=30)


async def prepare_orders(
    gateway: httpx.AsyncClient, staff_password: str, clients: int
) -> tuple[list[str], list[dict[str, str]]]:
    """Books with stock enough for any run, and a signed-in customer per client."""
    token = await gateway.post(
        "/api/auth/token",
        data={"username": "staff@bookstore.local", "password": staff_password},
    )
    token.raise_for_status()
    shop = Shop(gateway, {"Authorization": f"Bearer {token.json()['access_token']}"})
    books = [await shop.new_book(stock=STOCK_PER_BOOK, price_cents=999) for _ in range(BOOKS)]
    customers = [await shop.new_customer() for _ in range(clients)]
    return books, customers


async def place_orders(
    gateway: httpx.AsyncClient,
    books: list[str],
    customers: list[dict[str, str]],
    seconds: float,
) -> tuple[list[float], list[str]]:
    """Every customer places orders one after another for `seconds`: the latencies of those
    that ended final, and every outcome."""
    latencies: list[float] = []
    outcomes: list[str] = []
    deadline = time.perf_counter() + seconds
    await asyncio.gather(
        *(
            _place_orders(gateway, customer, books, deadline, latencies, outcomes, i)
            for i, customer in enumerate(customers)
        )
    )
    return latencies, outcomes


def machine_busy_ms() -> int:
    """CPU time the whole machine spent busy (every process: the stack, Postgres, the broker
    and this load generator), from /proc/stat; 0 where there is none."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) * 1000 // os.sysconf("SC_CLK_TCK")
