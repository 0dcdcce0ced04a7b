"""RabbitMQ (aio-pika): one robust connection per app, kept in the lifespan.

Topology, the same in every deployment (names prefixed by the namespace):
- `<ns>.messages`, a direct exchange; a message's routing key is its type (`ReserveStock`).
- one durable quorum queue per app and purpose (`<ns>.inventory.commands`), bound to the
  types it handles, with a delivery limit and a dead-letter exchange;
- `<ns>.dead-letter`, a direct exchange, and `<queue>.dead` for each queue's dead letters.
Publishes are persistent, confirmed and mandatory: a message no queue takes raises.
"""

from collections.abc import Iterable

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
    ExchangeType,
)

from bookstore_shared.messages import Envelope

DELIVERY_LIMIT = 10

# Every queue of the system, by purpose; each app consumes its own (see its consumers.py).
INVENTORY_COMMANDS = "inventory.commands"
SALES_SAGA = "sales.saga"
SALES_PAYMENTS = "sales.payments"
DELIVERY_COMMANDS = "delivery.commands"
QUEUES = (INVENTORY_COMMANDS, SALES_SAGA, SALES_PAYMENTS, DELIVERY_COMMANDS)


class Broker:
    def __init__(self, url: str, *, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
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
        """The queue for one app's purpose, bound to its message types, with its dead letters."""
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

    async def delete_namespace(self) -> None:
        """Remove every queue and exchange of this namespace (test runs clean up with this)."""
        channel = await self.connection.channel()
        try:
            for purpose in QUEUES:
                for name in (self.name(purpose), f"{self.name(purpose)}.dead"):
                    await channel.queue_delete(name)
            for exchange in (self.exchange_name, self.dead_letter_exchange_name):
                await channel.exchange_delete(exchange)
        finally:
            await channel.close()

    async def publish(self, envelope: Envelope) -> None:
        """Persistent, mandatory, confirmed: returns once the broker has taken the message."""
        if self._exchange is None:
            raise RuntimeError("Broker.connect() was not called")
        headers: dict[str, str] = {}
        if envelope.causation_id:
            headers["causation_id"] = str(envelope.causation_id)
        if envelope.traceparent:
            headers["traceparent"] = envelope.traceparent
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
