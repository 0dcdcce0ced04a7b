"""Steady order load through the gateway, for tests that break things while customers order."""

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import httpx

from bookstore_testing.shop import Shop, eventually


@dataclass
class Answer:
    sent_at: float
    status: int
    body: str


@dataclass
class OrderLoad:
    """Customers, each placing one order after another (with an Idempotency-Key and
    `Prefer: wait`, as a careful client does) until told to stop. A connection that breaks is
    an answer too (status 0)."""

    shop: Shop
    books: list[str]
    customers: list[dict[str, str]]
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    clients: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self.clients = [asyncio.create_task(self._client(n)) for n in range(len(self.customers))]

    async def finish(self) -> None:
        """Stop ordering, and wait for the orders already sent to be answered."""
        self.stop.set()
        await asyncio.gather(*self.clients)

    async def _client(self, n: int) -> None:
        turn = n
        while not self.stop.is_set():
            turn += 1
            sent_at = time.monotonic()
            try:
                reply = await self.shop.place_order(
                    self.customers[n],
                    [(self.books[turn % len(self.books)], 1)],
                    key=uuid.uuid4().hex,
                    wait=30,
                )
            except httpx.TransportError as exc:
                self.answers.append(Answer(sent_at, 0, repr(exc)))
                continue
            self.answers.append(Answer(sent_at, reply.status_code, reply.text[:300]))

    async def run_until(self, more: int, *, within: float) -> None:
        """Keep ordering until `more` answers beyond those so far have come back."""
        target = len(self.answers) + more

        async def enough() -> bool:
            return len(self.answers) >= target

        await eventually(enough, within=within, what=f"{more} more orders answered")

    def failures(self) -> list[Answer]:
        return [a for a in self.answers if not 200 <= a.status < 300]
