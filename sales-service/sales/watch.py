"""Wakes whoever waits on an order (Prefer: wait, its SSE stream) or on an account's orders
(the account's SSE stream; staff watch every account) when one changes.

The saga sends `pg_notify` in the transaction that changes an order, so the notice arrives
after the commit, in every replica; each replica keeps one LISTEN connection for all waiters.
The notice is `<order id>:<saga state>:<customer id>`. When the write that makes an order final
is this replica's own, its waiters get the order as written (`settled`), without reading it
again.
"""

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import Iterator
from types import TracebackType

import asyncpg
import structlog

from bookstore_shared.background import cancel
from bookstore_shared.db import asyncpg_dsn
from sales.models import OrderPublic, SagaState
from sales.saga_store import ORDER_CHANNEL, SagaOrder

log = structlog.get_logger(__name__)


class OrderWatch:
    def __init__(self, database_url: str) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._waiters: defaultdict[uuid.UUID, set[Watcher]] = defaultdict(set)
        # By customer; None: staff, who see every account's orders.
        self._accounts: defaultdict[uuid.UUID | None, set[Watcher]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "OrderWatch":
        connected = asyncio.Event()
        self._task = asyncio.create_task(self._listen(connected), name="order-watch")
        await asyncio.wait_for(connected.wait(), 10)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await cancel(self._task)

    async def _listen(self, connected: asyncio.Event) -> None:
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn)
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(ORDER_CHANNEL, self._on_notify)
                connected.set()
                self._wake_all()  # anything may have changed while we were not listening
                try:
                    await lost.wait()
                finally:
                    await conn.close(timeout=2)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("order_watch_reconnecting", error=repr(exc))
            await asyncio.sleep(1)

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        order_id, saga_state, customer_id, *_ = [*payload.split(":"), "", ""]
        with contextlib.suppress(ValueError):
            for watcher in self._waiters.get(uuid.UUID(order_id), ()):
                watcher.changed.set()
                if saga_state == SagaState.COMPLETED:
                    watcher.final.set()
        accounts: list[uuid.UUID | None] = [None]
        with contextlib.suppress(ValueError):
            accounts.append(uuid.UUID(customer_id))
        for account in accounts:
            for watcher in self._accounts.get(account, ()):
                watcher.changed.set()

    def settled(self, order: SagaOrder) -> None:
        """`order` became final in a write this process has just committed: its waiters have
        it as written (the notice that follows only wakes them again)."""
        waiters = self._waiters.get(order.id)
        if not waiters:
            return
        public = OrderPublic.of(order)
        for watcher in waiters:
            watcher.order = public
            watcher.final.set()

    def _wake_all(self) -> None:
        for watchers in [*self._waiters.values(), *self._accounts.values()]:
            for watcher in watchers:
                watcher.changed.set()
                watcher.final.set()  # we may have missed it: make every waiter look

    @contextlib.contextmanager
    def watching(self, order_id: uuid.UUID) -> Iterator["Watcher"]:
        """Events set when the order may have changed, and when it may be final.

        They only say "look again": read the order after each wake.
        """
        watcher = Watcher()
        self._waiters[order_id].add(watcher)
        try:
            yield watcher
        finally:
            self._waiters[order_id].discard(watcher)
            if not self._waiters[order_id]:
                del self._waiters[order_id]

    @contextlib.contextmanager
    def watching_account(self, customer_id: uuid.UUID | None) -> Iterator["Watcher"]:
        """An event set when one of the customer's orders (None: any order) may have changed."""
        watcher = Watcher()
        self._accounts[customer_id].add(watcher)
        try:
            yield watcher
        finally:
            self._accounts[customer_id].discard(watcher)
            if not self._accounts[customer_id]:
                del self._accounts[customer_id]


class Watcher:
    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.final = asyncio.Event()
        # The order as this process wrote it when it became final, if it did (`settled`).
        self.order: OrderPublic | None = None
