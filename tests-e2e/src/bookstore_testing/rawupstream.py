"""A bare HTTP/1.1 upstream for the gateway's tests: answers what it is told, counts what it
answered, and can drop a kept-alive connection at the moment it is reused."""

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bookstore_testing.harness import free_port


@dataclass
class RawUpstream:
    """A bare HTTP/1.1 server. Each connection answers `answer_per_connection` requests with
    `status` and keeps the connection open; the next request on it is read, then the
    connection is closed without a word: exactly what a client sees when it reuses a
    connection at the moment the server drops it as idle. `delay` holds each answer back."""

    status: int = 200
    answer_per_connection: int = 1_000_000
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer
    answered: Counter[str] = field(default_factory=Counter)  # method → answers sent
    dropped: int = 0
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method = head.split(b" ", 1)[0].decode()
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if served == self.answer_per_connection:
                    self.dropped += 1
                    return
                await asyncio.sleep(self.delay)
                served += 1
                self.answered[method] += 1
                body = json.dumps({"method": method, "on_connection": served}).encode()
                extra = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
                writer.write(
                    f"HTTP/1.1 {self.status} X\r\ncontent-type: application/json\r\n{extra}"
                    f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["RawUpstream"]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        try:
            yield self
        finally:
            server.close()
            await server.wait_closed()
