"""A wiretap on the broker: a private queue that also receives every message of some types, to
see what the apps say to each other about an order."""

import asyncio
import json
import uuid
from types import TracebackType
from typing import Any

import aio_pika

from bookstore_shared.messaging import Broker


class Wiretap:
    def __init__(self, broker: Broker, *message_types: str) -> None:
        self.broker = broker
        self.message_types = message_types
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None

    async def __aenter__(self) -> "Wiretap":
        self._channel = await self.broker.connection.channel()
        self._queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
        exchange = await self._channel.get_exchange(self.broker.exchange_name)
        for message_type in self.message_types:
            await self._queue.bind(exchange, routing_key=message_type)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def heard(
        self, order_id: uuid.UUID, *, quiet_for: float, at_least: int = 0
    ) -> list[tuple[str, Any]]:
        """(type, payload) of each message about `order_id`, in arrival order, until none has
        come for `quiet_for` seconds (and, with `at_least`, that many have come)."""
        copies = await self.copies(order_id, quiet_for, at_least=at_least)
        return [(kind, payload) for _, kind, payload in copies]

    async def copies(
        self, order_id: uuid.UUID, quiet_for: float, *, at_least: int = 0, within: float = 30
    ) -> list[tuple[str, str, Any]]:
        """(message id, type, payload) of every copy heard about `order_id`: the outbox may
        publish a message twice (the receivers' inboxes drop the copy). The first `at_least`
        are waited for up to `within` seconds, however busy the machine; then the silence."""
        assert self._queue is not None, "use it as `async with Wiretap(...)`"
        seen: list[tuple[str, str, Any]] = []
        loop = asyncio.get_running_loop()
        last = loop.time()
        deadline = last + within
        while loop.time() - last < quiet_for or (len(seen) < at_least and loop.time() < deadline):
            message = await self._queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            if message.correlation_id == str(order_id):
                body = json.loads(message.body)
                seen.append((message.message_id or "", message.type or "", body["payload"]))
                last = loop.time()
        return seen

    async def types_heard(
        self, order_id: uuid.UUID, *, quiet_for: float, at_least: int = 0
    ) -> list[str]:
        heard = await self.heard(order_id, quiet_for=quiet_for, at_least=at_least)
        return [kind for kind, _ in heard]
