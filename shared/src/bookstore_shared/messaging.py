"""Messaging over RabbitMQ (aio-pika): one robust connection per app, kept in the lifespan."""

import aio_pika
from aio_pika.abc import AbstractRobustConnection


class Broker:
    def __init__(self, url: str, *, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
        self._connection: AbstractRobustConnection | None = None

    def name(self, suffix: str) -> str:
        """An exchange or queue name inside this deployment's namespace."""
        return f"{self.namespace}.{suffix}"

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url, timeout=10)

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._connection

    async def ping(self) -> None:
        if self._connection is None or self._connection.is_closed:
            raise ConnectionError("not connected to the broker")

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
