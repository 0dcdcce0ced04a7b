"""`make bench`: what the stack does on this machine under steady load from N clients.

    python -m bookstore_testing.bench [--clients 16] [--seconds 20] [--only catalog|orders]
                                      [--save-baseline] [--url URL --password P]

It starts a stack of its own (a fresh database and broker namespace, removed afterwards) and
measures, phase after phase:
- catalog: `GET /api/books/{id}` straight to inventory (with a valid identity assertion),
  through the gateway as clients meet it (its shared cache answers most), and through the
  gateway with a query string of its own on every request (so every one is forwarded), in
  alternating phases from the same client; then a search (`GET /api/books?q=...`);
- orders: each client places one order after another with `Prefer: wait=30`, so the answer
  comes when the saga is final: orders per second, POST-to-final latency, and what an order
  costs: database transactions (pg_stat_database), statements (pg_stat_statements, where
  Postgres preloads it), rows written, messages sent (outbox rows), and the machine's CPU time
  (/proc/stat: the stack, Postgres, the broker and the load generator together);
- the stack's Postgres connections, sampled all along (the budget is 40).
It prints a table with each figure's ratio to the committed baseline
(`tests-e2e/bench-baseline.json`, taken on this project's 2-core machine) and writes every
figure to a JSON file. Only loopback traffic; bounded by clients and seconds.
"""

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
from sqlalchemy import make_url

from bookstore_shared.db import asyncpg_dsn
from bookstore_shared.identity import ASSERTION_HEADER, IdentitySigner
from bookstore_shared.stack import LocalStack, StackError, parse_replicas
from bookstore_shared.telemetry import tracing_mode
from bookstore_testing.phases import (
    BOOKS,
    machine_busy_ms,
    order_client,
    percentile,
    place_orders,
    prepare_orders,
)
from bookstore_testing.stacks import DEMO_PASSWORD, standalone_stack

# One process of each app may hold at most this many Postgres connections (README).
POSTGRES_BUDGET = 40
BASELINE = Path(__file__).resolve().parents[2] / "bench-baseline.json"
APP_SCHEMAS = ("inventory", "sales", "delivery")


def _summary(latencies: list[float], seconds: float) -> dict[str, float]:
    return {
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


# --- Catalog --------------------------------------------------------------------------------


async def _hammer(
    url: str, headers: dict[str, str], clients: int, seconds: float, *, unique: bool = False
) -> list[float]:
    """Latencies of back-to-back GETs from `clients` connections for `seconds`; with `unique`,
    each URL gets a query string of its own, so no cache on the way can answer it."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    counter = iter(range(10**9))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                target = f"{url}?n={next(counter)}" if unique else url
                async with session.get(target, headers=headers) as reply:
                    await reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"{url} answered {reply.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


async def catalog(
    stack: LocalStack, identity_secret: str, clients: int, seconds: float
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.url("gateway")) as gateway:
        book_id = (await gateway.get("/api/books?size=1")).json()["data"][0]["id"]
    via_gateway = f"{stack.url('gateway')}/api/books/{book_id}"
    direct = f"{stack.url('inventory')}/books/{book_id}"
    search = f"{stack.url('gateway')}/api/books?q=history&size=10"
    signer = IdentitySigner(identity_secret, ttl_seconds=600)
    assertion = {ASSERTION_HEADER: signer.sign(user_id=None, roles=(), request_id=None)}
    phase = seconds / 4
    print(f"catalog: {clients} clients, by id through the gateway and direct, alternating ...")
    await _hammer(via_gateway, {}, clients, 1.0)  # warm-up, not measured
    through: list[float] = []
    straight: list[float] = []
    uncached: list[float] = []
    for _ in range(2):
        straight += await _hammer(direct, assertion, clients, phase)
        through += await _hammer(via_gateway, {}, clients, phase)
        uncached += await _hammer(via_gateway, {}, clients, phase, unique=True)
    print(f"catalog: {clients} clients, search through the gateway ...", flush=True)
    searched = await _hammer(search, {}, clients, seconds / 2)
    half = seconds / 2
    by_id_through, by_id_direct = _summary(through, half), _summary(straight, half)
    by_id_uncached = _summary(uncached, half)
    return {
        "clients": clients,
        "by_id": {
            "via_gateway": by_id_through,
            "via_gateway_uncached": by_id_uncached,
            "direct": by_id_direct,
            "throughput_ratio": round(
                by_id_through["requests_per_second"] / by_id_direct["requests_per_second"], 3
            ),
            "uncached_throughput_ratio": round(
                by_id_uncached["requests_per_second"] / by_id_direct["requests_per_second"], 3
            ),
            "added_p50_ms": round(by_id_uncached["p50_ms"] - by_id_direct["p50_ms"], 2),
        },
        "search": _summary(searched, half),
    }


# --- Orders ---------------------------------------------------------------------------------


@dataclass
class DatabaseCounters:
    """What the stack asked of Postgres, from its own statistics, between two readings; and
    the machine's CPU time. Statements are counted where Postgres loads pg_stat_statements."""

    url: str

    async def read(self) -> dict[str, int]:
        conn = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            # The statistics of this transaction are a snapshot: ask for fresh ones.
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            row = await conn.fetchrow(
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
            messages = 0
            for schema in APP_SCHEMAS:
                messages += await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox')  # noqa: S608 - our schemas
            statements = await self._statements(conn)
        finally:
            await conn.close()
        counts = {
            "transactions": row["xact_commit"] + row["xact_rollback"],
            "rows_written": row["tup_inserted"] + row["tup_updated"] + row["tup_deleted"],
            "messages": messages,
            "machine_cpu_ms": machine_busy_ms(),
        }
        if statements is not None:
            counts["statements"] = statements  # every round trip, BEGIN and COMMIT included
        return counts

    @staticmethod
    async def _statements(conn: asyncpg.Connection) -> int | None:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            return int(
                await conn.fetchval(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
        except asyncpg.PostgresError:
            return None  # not in shared_preload_libraries: the figure is left out


def _per_order(before: dict[str, int], after: dict[str, int], orders: int) -> dict[str, float]:
    return {
        f"{name}_per_order": round((after[name] - before[name]) / max(orders, 1), 1)
        for name in before
        if name in after
    }


async def orders(
    url: str,
    staff_password: str,
    clients: int,
    seconds: float,
    counters: DatabaseCounters | None = None,
) -> dict[str, Any]:
    async with order_client(url, clients) as gateway:
        print(f"orders: preparing {BOOKS} books and {clients} customers ...", flush=True)
        books, customers = await prepare_orders(gateway, staff_password, clients)

        # A short warm-up, not measured: connection pools, caches, first-use imports.
        await place_orders(gateway, books, customers, 2)
        print(f"orders: {clients} clients for {seconds:.0f} s ...", flush=True)
        before = await counters.read() if counters else None
        started = time.perf_counter()
        latencies, outcomes = await place_orders(gateway, books, customers, seconds)
        elapsed = time.perf_counter() - started
        after = await counters.read() if counters else None

    completed = len(latencies)
    result: dict[str, Any] = {
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
    }
    if before is not None and after is not None:
        result["cost"] = _per_order(before, after, len(outcomes))
    return result


# --- Postgres connections -------------------------------------------------------------------


class ConnectionCount:
    """Postgres connections to one database, sampled while the benchmark runs (the budget)."""

    def __init__(self, database_url: str) -> None:
        self.url = make_url(database_url)
        self.peak = 0

    async def now(self) -> int:
        conn = await asyncpg.connect(
            asyncpg_dsn(self.url.set(database="postgres").render_as_string(False))
        )
        try:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", self.url.database
            )
        finally:
            await conn.close()
        return count

    async def sample(self, every: float = 0.5) -> None:
        while True:
            self.peak = max(self.peak, await self.now())
            await asyncio.sleep(every)


async def with_own_stack(
    clients: int, seconds: float, only: str | None, replicas: dict[str, int]
) -> dict[str, Any]:
    async with AsyncExitStack() as cleanup:
        stack, secret = await cleanup.enter_async_context(
            standalone_stack("bench", env={"LOG_LEVEL": "WARNING"}, replicas=replicas)
        )
        result: dict[str, Any] = {}
        database_url = stack.env["DATABASE_URL"]
        connections = ConnectionCount(database_url)
        sampler = asyncio.create_task(connections.sample())
        try:
            if only in (None, "catalog"):
                result["catalog"] = await catalog(stack, secret, clients, seconds)
            if only in (None, "orders"):
                counters = DatabaseCounters(asyncpg_dsn(database_url))
                result["orders"] = await orders(
                    stack.url("gateway"), DEMO_PASSWORD, clients, seconds, counters
                )
        finally:
            sampler.cancel()
        result["postgres_connections"] = {
            "peak": connections.peak,
            "after": await connections.now(),
            "budget": POSTGRES_BUDGET,
        }
        return result


# --- The table ------------------------------------------------------------------------------

# (label, path into the result, unit, True if higher is better)
FIGURES = (
    (
        "catalog by id, through the gateway",
        "catalog.by_id.via_gateway.requests_per_second",
        "req/s",
        True,
    ),
    (
        "catalog by id, straight to inventory",
        "catalog.by_id.direct.requests_per_second",
        "req/s",
        True,
    ),
    (
        "catalog by id, gateway, no cache hit",
        "catalog.by_id.via_gateway_uncached.requests_per_second",
        "req/s",
        True,
    ),
    ("gateway, to direct throughput", "catalog.by_id.throughput_ratio", "", True),
    ("gateway no cache hit, to direct", "catalog.by_id.uncached_throughput_ratio", "", True),
    ("gateway adds at p50 (no cache hit)", "catalog.by_id.added_p50_ms", "ms", False),
    ("catalog search, through the gateway", "catalog.search.requests_per_second", "req/s", True),
    ("orders completed", "orders.orders_per_second", "/s", True),
    ("order POST to final, p50", "orders.latency_ms.p50", "ms", False),
    ("order POST to final, p99", "orders.latency_ms.p99", "ms", False),
    ("orders confirmed", "orders.confirmed_share", "", True),
    ("database transactions per order", "orders.cost.transactions_per_order", "", False),
    ("database statements per order", "orders.cost.statements_per_order", "", False),
    ("rows written per order", "orders.cost.rows_written_per_order", "", False),
    ("messages per order", "orders.cost.messages_per_order", "", False),
    ("machine CPU per order (all processes)", "orders.cost.machine_cpu_ms_per_order", "ms", False),
    ("Postgres connections, peak", "postgres_connections.peak", "", False),
)


def _get(result: dict[str, Any], path: str) -> float | None:
    node: Any = result
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) else None


def table(result: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    rows = [f"{'':40} {'now':>12} {'baseline':>12} {'ratio':>7}"]
    for label, path, unit, _ in FIGURES:
        value = _get(result, path)
        if value is None:
            continue
        before = _get(baseline, path) if baseline else None
        ratio = f"{value / before:6.2f}x" if before else ""
        shown = f"{value:g} {unit}".strip()
        was = f"{before:g} {unit}".strip() if before is not None else ""
        rows.append(f"{label:40} {shown:>12} {was:>12} {ratio:>7}")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bookstore_testing.bench")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--only", choices=["orders", "catalog"], help="one measurement only")
    parser.add_argument("--url", help="orders against a running gateway instead of our own stack")
    parser.add_argument(
        "--password",
        default=os.environ.get("DEMO_PASSWORD", "bookstore-demo"),
        help="the staff demo password of the running stack (with --url)",
    )
    parser.add_argument(
        "--replicas",
        default="",
        help="more processes of an app in our own stack, as REPLICAS takes them: sales=2",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="orders only: this checkout against git revision REV, both stacks side by side, "
        "alternating phases (the figure to quote on a machine whose speed wanders)",
    )
    parser.add_argument("--rounds", type=int, default=8, help="with --against: phases on each")
    parser.add_argument(
        "--phase", type=float, default=6.0, help="with --against: seconds of each phase"
    )
    parser.add_argument("--out", default="bench-results.json")
    parser.add_argument(
        "--save-baseline", action="store_true", help=f"also write the figures to {BASELINE.name}"
    )
    args = parser.parse_args()
    if not 1 <= args.clients <= 256 or not 1 <= args.seconds <= 600:
        parser.error("--clients must be 1..256 and --seconds 1..600")
    try:
        replicas = parse_replicas(args.replicas)
    except StackError as exc:
        parser.error(str(exc))
    if args.against:
        from bookstore_testing import against  # it builds on this module's order load

        if not 1 <= args.rounds <= 50 or not 1 <= args.phase <= 60:
            parser.error("--rounds must be 1..50 and --phase 1..60")
        return against.run(
            args.against,
            clients=args.clients,
            rounds=args.rounds,
            phase_seconds=args.phase,
            out=args.out,
        )
    if args.url:
        result = {
            "orders": asyncio.run(orders(args.url, args.password, args.clients, args.seconds))
        }
    else:
        result = asyncio.run(with_own_stack(args.clients, args.seconds, args.only, replicas))
        result["replicas"] = replicas
    result["run_id"] = uuid.uuid4().hex[:8]
    result["telemetry"] = f"metrics, {tracing_mode()}"
    result["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else None
    print()
    print(table(result, baseline))
    if orders_run := result.get("orders"):
        print(f"outcomes: {orders_run['outcomes']}")
    print(f"telemetry: {result['telemetry']} (OTEL_SDK_DISABLED=true make bench: tracing off)")
    if result.get("replicas"):
        print(f"replicas: {result['replicas']} (every other app: one process)")
    if pool := result.get("postgres_connections"):
        print(f"Postgres connections after the run: {pool['after']} (budget {pool['budget']})")
    print(
        f"machine: {os.cpu_count()} CPUs, shared by the stack, broker, database and the load "
        f"generator; figures vary a few percent run to run\nwritten to {args.out}",
        flush=True,
    )
    if args.save_baseline:
        BASELINE.write_text(json.dumps(result, indent=2) + "\n")
        print(f"saved as the baseline: {BASELINE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
