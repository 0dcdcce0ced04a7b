"""Clients that go away abruptly: the load a server must survive without losing its process.

Raw sockets, so a client can vanish at any point of an exchange: right after sending a request
(the server has not answered yet), after the first bytes of the answer (mid-response, mid-SSE
stream), or all connections of a busy pool at the same instant (as a load tester does when its
run ends). Each close is an abortive one (SO_LINGER 0, so the peer sees a reset) or an orderly
one, alternately. Only loopback traffic; every run is bounded by a count or a deadline.
"""

import asyncio
import itertools
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class Target:
    """One kind of request against one server: `base` is http://host:port."""

    name: str
    base: str
    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def request(self) -> bytes:
        host = urlsplit(self.base).netloc
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        if self.body or self.method in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body

    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.base)
        return parts.hostname or "127.0.0.1", parts.port or 80


@dataclass
class Tally:
    """What the clients saw: status codes of complete answers, and how they left."""

    statuses: Counter[int] = field(default_factory=Counter)
    aborted: int = 0
    refused: int = 0

    def add(self, other: "Tally") -> None:
        self.statuses.update(other.statuses)
        self.aborted += other.aborted
        self.refused += other.refused


async def _open(target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(*target.address()), 5)


def _vanish(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    sock = writer.get_extra_info("socket")
    if reset and sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    writer.transport.abort() if reset else writer.close()


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """Read one whole answer (Content-Length or chunked); return its status."""
    head = await reader.readuntil(_HEAD_END)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines if line)
    }
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def hammer_then_vanish(
    target: Target, *, connections: int, seconds: float, stop: asyncio.Event | None = None
) -> Tally:
    """`connections` keep-alive clients send requests back to back for `seconds`, then every
    one of them disconnects at the same instant, most with a request still unanswered."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    writers: list[asyncio.StreamWriter] = []
    request = target.request()

    async def client() -> None:
        try:
            reader, writer = await _open(target)
        except OSError:
            tally.refused += 1
            return
        writers.append(writer)
        try:
            while time.monotonic() < deadline and not (stop and stop.is_set()):
                writer.write(request)
                tally.statuses[await _read_answer(reader)] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            tally.aborted += 1

    tasks = [asyncio.create_task(client()) for _ in range(connections)]
    await asyncio.wait(tasks, timeout=seconds + 1)
    # The moment the load ends: every connection goes at once, answers half-sent or not.
    for i, writer in enumerate(writers):
        _vanish(writer, reset=i % 2 == 0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return tally


async def vanish_mid_exchange(
    target: Target, *, count: int, concurrency: int = 16, after_bytes: int = 0, linger: float = 0
) -> Tally:
    """`count` clients each send the request, wait for `after_bytes` bytes of the answer (0: for
    none) or `linger` seconds, then disconnect without reading the rest."""
    tally = Tally()
    slots = asyncio.Semaphore(concurrency)
    reset = itertools.cycle((True, False))
    request = target.request()

    async def one() -> None:
        async with slots:
            try:
                reader, writer = await _open(target)
            except OSError:
                tally.refused += 1
                return
            try:
                writer.write(request)
                await writer.drain()
                if after_bytes:
                    await asyncio.wait_for(reader.readexactly(after_bytes), 10)
                elif linger:
                    await asyncio.sleep(linger)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                pass
            finally:
                _vanish(writer, reset=next(reset))
                tally.aborted += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return tally
