"""RabbitMQ (aio-pika): one robust connection per app, kept in the lifespan.

Topology, the same in every deployment (names prefixed by the namespace):
- `<ns>.messages`, a direct exchange; a message's routing key is its type (`ReserveStock`).
- one durable quorum queue per app and purpose (`<ns>.inventory.commands`), bound to the
  types it handles, with a delivery limit and a dead-letter exchange;
- `<queue>.retry.<n>s` for each queue and each back-off tier: a message whose handler failed
  waits there (its TTL) and then goes back to its queue; after the last try of
  `RETRY_SCHEDULE` (about a quarter of an hour in all) it is parked in the dead letters;
- `<ns>.dead-letter`, a direct exchange, and `<queue>.dead` for each queue's dead letters,
  which `python -m <app> replay-dead-letters` sends back to their queue.
Publishes are persistent, confirmed and mandatory: a message no queue takes raises.
"""

from collections.abc import Iterable

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ExchangeType,
)
from opentelemetry import trace
from opentelemetry.trace import Tracer

from bookstore_shared.messages import Envelope

# Redeliveries of one message (a process that dies handling it, say) before it is dead.
DELIVERY_LIMIT = 10
# Seconds a message whose handler failed waits before each next try: growing, and long enough
# in all (15.5 minutes) to outlast a database restart or a short outage.
RETRY_SCHEDULE = (1, 1, 1, 10, 10, 10, *(60,) * 15)
RETRY_TIERS = tuple(sorted(set(RETRY_SCHEDULE)))
RETRIES_HEADER = "x-retries"

# Every queue of the system, by purpose; each app consumes its own (see its consumers.py).
INVENTORY_COMMANDS = "inventory.commands"
SALES_SAGA = "sales.saga"
SALES_PAYMENTS = "sales.payments"
SALES_CATALOG = "sales.catalog"
DELIVERY_COMMANDS = "delivery.commands"
QUEUES = (INVENTORY_COMMANDS, SALES_SAGA, SALES_PAYMENTS, SALES_CATALOG, DELIVERY_COMMANDS)


class Broker:
    def __init__(self, url: str, *, namespace: str, tracer: Tracer | None = None) -> None:
        self.url = url
        self.namespace = namespace
        # The app's tracer: consumers open their spans with it (no-op without telemetry).
        self.tracer = tracer or trace.get_tracer("bookstore")
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    def name(self, suffix: str) -> str:
        """An exchange or queue name inside this deployment's namespace."""
        return f"{self.namespace}.{suffix}"

    @property
    def exchange_name(self) -> str:
        return self.name("messages")

    @property
    def dead_letter_exchange_name(self) -> str:
        return self.name("dead-letter")

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url, timeout=10)
        self._publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchange = await self._publish_channel.declare_exchange(
            self.exchange_name, ExchangeType.DIRECT, durable=True
        )

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._connection

    async def declare_queue(
        self, channel: AbstractChannel, purpose: str, message_types: Iterable[str]
    ) -> AbstractQueue:
        """The queue for one app's purpose, bound to its message types, with its retry tiers
        and its dead letters."""
        queue_name = self.name(purpose)
        exchange = await channel.declare_exchange(
            self.exchange_name, ExchangeType.DIRECT, durable=True
        )
        dead_letters = await channel.declare_exchange(
            self.dead_letter_exchange_name, ExchangeType.DIRECT, durable=True
        )
        dead_queue = await channel.declare_queue(
            f"{queue_name}.dead", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead_queue.bind(dead_letters, routing_key=queue_name)
        for seconds in RETRY_TIERS:
            await channel.declare_queue(
                self.retry_queue(purpose, seconds),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-message-ttl": seconds * 1000,
                    # When its time is up the message goes back to its own queue, and it is
                    # not lost on the way (at-least-once needs reject-publish).
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue_name,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )
        queue = await channel.declare_queue(
            queue_name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": self.dead_letter_exchange_name,
                "x-dead-letter-routing-key": queue_name,
            },
        )
        for message_type in message_types:
            await queue.bind(exchange, routing_key=message_type)
        return queue

    def retry_queue(self, purpose: str, seconds: int) -> str:
        return f"{self.name(purpose)}.retry.{seconds}s"

    async def retry_later(self, purpose: str, message: AbstractIncomingMessage) -> bool:
        """Send a message whose handler failed to wait before its next try; False once it
        has had every try, and then it is parked in the queue's dead letters instead."""
        retries = retries_of(message)
        copy = _copy(message, headers={RETRIES_HEADER: retries + 1})
        if retries < len(RETRY_SCHEDULE):
            target = self.retry_queue(purpose, RETRY_SCHEDULE[retries])
            await self._channel().default_exchange.publish(copy, routing_key=target, timeout=10)
            return True
        dead_letters = await self._channel().get_exchange(self.dead_letter_exchange_name)
        await dead_letters.publish(copy, routing_key=self.name(purpose), timeout=10)
        return False

    async def replay_dead_letters(self, purpose: str) -> int:
        """Move every dead letter of a queue back to it, its tries counted afresh. Safe to
        run twice: consumers skip a message they have handled already."""
        channel = await self.connection.channel(publisher_confirms=True)
        moved = 0
        try:
            dead = await channel.declare_queue(f"{self.name(purpose)}.dead", passive=True)
            while (message := await dead.get(fail=False)) is not None:
                await channel.default_exchange.publish(
                    _copy(message, headers={RETRIES_HEADER: 0}),
                    routing_key=self.name(purpose),
                    timeout=10,
                )
                await message.ack()
                moved += 1
        finally:
            await channel.close()
        return moved

    def _channel(self) -> AbstractChannel:
        if self._publish_channel is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._publish_channel

    async def delete_namespace(self) -> None:
        """Remove every queue and exchange of this namespace (test runs clean up with this)."""
        channel = await self.connection.channel()
        try:
            for purpose in QUEUES:
                retries = [self.retry_queue(purpose, seconds) for seconds in RETRY_TIERS]
                for name in (self.name(purpose), f"{self.name(purpose)}.dead", *retries):
                    await channel.queue_delete(name)
            for exchange in (self.exchange_name, self.dead_letter_exchange_name):
                await channel.exchange_delete(exchange)
        finally:
            await channel.close()

    async def publish(self, envelope: Envelope) -> None:
        """Persistent, mandatory, confirmed: returns once the broker has taken the message."""
        if self._exchange is None:
            raise RuntimeError("Broker.connect() was not called")
        # The trace context as it was when the message was written (W3C traceparent...): the
        # consumer's span continues that trace, whichever process publishes the row.
        headers: dict[str, str] = dict(envelope.trace_context)
        if envelope.causation_id:
            headers["causation_id"] = str(envelope.causation_id)
        message = aio_pika.Message(
            body=envelope.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(envelope.message_id),
            correlation_id=str(envelope.correlation_id),
            type=envelope.type,
            timestamp=envelope.occurred_at,
            headers=headers,  # type: ignore[arg-type]
        )
        await self._exchange.publish(message, routing_key=envelope.type, mandatory=True, timeout=10)

    async def ping(self) -> None:
        if self._connection is None or self._connection.is_closed:
            raise ConnectionError("not connected to the broker")

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


def retries_of(message: AbstractIncomingMessage) -> int:
    count = (message.headers or {}).get(RETRIES_HEADER, 0)
    return count if isinstance(count, int) else 0


def _copy(message: AbstractIncomingMessage, *, headers: dict[str, int]) -> aio_pika.Message:
    """The same message (id, type, correlation, body) to publish again, with these headers."""
    kept = {k: v for k, v in (message.headers or {}).items() if k not in ("x-death", *headers)}
    return aio_pika.Message(
        body=message.body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        timestamp=message.timestamp,
        headers={**kept, **headers},
    )
