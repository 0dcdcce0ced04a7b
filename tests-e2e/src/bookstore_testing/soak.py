"""`make soak`: every process survives clients that vanish, all at once or mid-answer.

    python -m bookstore_testing.soak [--seconds 60] [--rounds 5] [--connections 32]

It starts a stack of its own. For `seconds`, split into `rounds`, `connections` keep-alive
clients per target send requests back to back: to the gateway (the catalog, and orders with
`Prefer: wait`) and to each app directly (with a valid identity assertion); at the end of each
round every one of them disconnects at the same instant, most with a request unanswered.
Meanwhile other clients walk away mid-response from proxied answers, mid-way through SSE order
streams and during `Prefer: wait`. After every round each process must still be running with
the PID it started with and answer /health/live. Exit status 0 if all did, 1 if not.
Only loopback traffic; bounded by `seconds`.
"""

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from bookstore_shared.identity import ASSERTION_HEADER, IdentitySigner
from bookstore_shared.stack import LocalStack
from bookstore_testing.disconnects import Tally, Target, hammer_then_vanish, vanish_mid_exchange
from bookstore_testing.shop import Shop, order_body
from bookstore_testing.stacks import DEMO_PASSWORD, standalone_stack


@dataclass(frozen=True)
class Targets:
    catalog: Target  # through the gateway
    orders: Target  # through the gateway, with `Prefer: wait`
    apps: list[Target]  # each app directly
    customer: dict[str, str]
    book: str

    @property
    def hammered(self) -> list[Target]:
        return [self.catalog, self.orders, *self.apps]


async def _targets(stack: LocalStack, shop: Shop, identity_secret: str, seconds: float) -> Targets:
    book = await shop.new_book(stock=1_000_000)
    customer = await shop.new_customer()
    me = (await shop.gateway.get("/api/auth/me", headers=customer)).json()
    order = (await shop.place_order(customer, [(book, 1)], wait=10)).json()
    signer = IdentitySigner(identity_secret, ttl_seconds=int(seconds) + 120)
    as_anyone = {ASSERTION_HEADER: signer.sign(user_id=None, roles=(), request_id=None)}
    as_customer = {
        ASSERTION_HEADER: signer.sign(
            user_id=uuid.UUID(me["id"]), roles=("customer",), request_id=None
        )
    }
    order_post = {
        **customer,
        "Content-Type": "application/json",
        "Prefer": "wait=5",
    }
    return Targets(
        catalog=Target("gateway catalog", stack.url("gateway"), f"/api/books/{book}"),
        orders=Target(
            "gateway orders",
            stack.url("gateway"),
            "/api/orders",
            method="POST",
            headers=order_post,
            body=json.dumps(order_body([(book, 1)])).encode(),
        ),
        apps=[
            Target("inventory", stack.url("inventory"), f"/books/{book}", headers=as_anyone),
            Target("sales", stack.url("sales"), f"/orders/{order['id']}", headers=as_customer),
            Target(
                "delivery",
                stack.url("delivery"),
                f"/deliveries?order_id={order['id']}",
                headers=as_customer,
            ),
        ],
        customer=customer,
        book=book,
    )


async def _walk_away_meanwhile(shop: Shop, targets: Targets, until: float) -> Tally:
    """Clients that leave in the middle: of a proxied answer, of an SSE stream, of a wait."""
    tally = Tally()
    customer, book = targets.customer, targets.book
    catalog, orders = targets.catalog, targets.orders
    waiting = Target(
        "waiting order",
        orders.base,
        orders.path,
        method="POST",
        headers={**orders.headers, "Prefer": "wait=20"},
        body=orders.body,
    )
    while time.monotonic() < until:
        try:
            fresh = (await shop.place_order(customer, [(book, 1)], wait=None)).json()
        except httpx.HTTPError:
            tally.refused += 1  # the round's check says what became of the gateway
            await asyncio.sleep(0.5)
            continue
        stream = Target(
            "order stream",
            catalog.base,
            f"/api/orders/{fresh['id']}/events",
            headers={"Authorization": customer["Authorization"], "Accept": "text/event-stream"},
        )
        for run in (
            vanish_mid_exchange(catalog, count=40, after_bytes=20),
            vanish_mid_exchange(catalog, count=40, linger=0.002),
            vanish_mid_exchange(stream, count=4, after_bytes=40),
            vanish_mid_exchange(waiting, count=8, linger=0.2),
        ):
            tally.add(await run)
    return tally


async def _alive(stack: LocalStack, pids: dict[str, int]) -> list[str]:
    """What is wrong with the processes now: died, replaced, or not answering."""
    problems = [f"{name} exited with code {code}" for name, code in stack.exited().items()]
    problems += [
        f"{name} has a new PID ({stack.pid(name)}, was {pid})"
        for name, pid in pids.items()
        if name not in stack.exited() and stack.pid(name) != pid
    ]
    async with httpx.AsyncClient(timeout=10) as probe:
        for name in pids:
            try:
                reply = await probe.get(f"{stack.url(name)}/health/live")
                if reply.status_code != 200:
                    problems.append(f"{name} answered /health/live with {reply.status_code}")
            except httpx.HTTPError as exc:
                problems.append(f"{name} did not answer /health/live: {exc!r}")
    return problems


async def soak(
    stack: LocalStack, identity_secret: str, *, seconds: float, rounds: int, connections: int
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30) as gateway:
        token = await gateway.post(
            "/api/auth/token",
            data={"username": "staff@bookstore.local", "password": DEMO_PASSWORD},
        )
        shop = Shop(gateway, {"Authorization": f"Bearer {token.json()['access_token']}"})
        targets = await _targets(stack, shop, identity_secret, seconds)
        pids = {name: stack.pid(name) for name in stack.all_processes()}
        loaded = targets.hammered
        per_round = seconds / rounds
        totals: dict[str, Tally] = {t.name: Tally() for t in loaded}
        walked_away = Tally()
        for number in range(1, rounds + 1):
            hammered = await asyncio.gather(
                *(
                    hammer_then_vanish(t, connections=connections, seconds=per_round)
                    for t in loaded
                ),
                _walk_away_meanwhile(shop, targets, time.monotonic() + per_round),
            )
            *per_target, walked = hammered
            for target, tally in zip(loaded, per_target, strict=True):
                totals[target.name].add(tally)
            walked_away.add(walked)
            answers = sum(sum(t.statuses.values()) for t in per_target)
            problems = await _alive(stack, pids)
            print(
                f"round {number}/{rounds}: {len(loaded)} targets x {connections} connections "
                f"closed at once after {answers} answers; {walked.aborted} clients walked "
                "away mid-way; "
                + ("every process alive, same PIDs" if not problems else "; ".join(problems)),
                flush=True,
            )
            if problems:
                return {"ok": False, "problems": problems, "round": number}
    return {
        "ok": True,
        "rounds": rounds,
        "seconds": seconds,
        "connections_per_target": connections,
        "answers": {name: dict(t.statuses) for name, t in totals.items()},
        "walked_away_mid_exchange": walked_away.aborted,
    }


async def _main(seconds: float, rounds: int, connections: int) -> dict[str, Any]:
    async with standalone_stack("soak", env={"LOG_LEVEL": "WARNING"}) as (stack, secret):
        return await soak(stack, secret, seconds=seconds, rounds=rounds, connections=connections)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bookstore_testing.soak")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if (
        not 1 <= args.seconds <= 600
        or not 1 <= args.rounds <= 50
        or not 1 <= args.connections <= 256
    ):
        parser.error("--seconds 1..600, --rounds 1..50, --connections 1..256")
    started = time.monotonic()
    result = asyncio.run(_main(args.seconds, args.rounds, args.connections))
    if result["ok"]:
        print(
            f"soak passed in {time.monotonic() - started:.0f} s: answers per target "
            f"{json.dumps(result['answers'])}",
            flush=True,
        )
        return 0
    print(f"error: soak failed in round {result['round']}: {'; '.join(result['problems'])}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
