"""Forwarding: public path prefix → app, with the caller's identity signed into an assertion."""

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
import httpx
import structlog
from fastapi import Request
from multidict import CIMultiDictProxy
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from yarl import URL

from bookstore_shared import metrics
from bookstore_shared.errors import DomainError, NotFound, ServiceUnavailable
from bookstore_shared.identity import ASSERTION_HEADER, IDENTITY_HEADERS, IdentitySigner, Principal
from bookstore_shared.prefer import requested_wait
from gateway.cache import PublicCache, public_max_age
from gateway.config import Settings

API_PREFIX = "/api"
log = structlog.get_logger(__name__)

# Public prefix → app. The longest matching prefix wins; the app sees the path without /api.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/reports/low-stock", "inventory"),
    ("/api/books", "inventory"),
    ("/api/cart", "sales"),
    ("/api/orders", "sales"),
    ("/api/reports", "sales"),
    ("/api/deliveries", "delivery"),
)
_BY_LENGTH = sorted(ROUTES, key=lambda r: len(r[0]), reverse=True)

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded upstream: hop-by-hop, identity (the assertion replaces them), client credentials.
_DROP_REQUEST = (
    HOP_BY_HOP
    | IDENTITY_HEADERS
    | {
        "host",
        "authorization",
        "x-api-key",
        "x-request-id",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    }
)
# The gateway sets these itself on every response.
_OWN_RESPONSE_HEADERS = frozenset({"x-request-id", "date", "server"})
_METHODS_WITHOUT_BODY = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class UpstreamUnavailable(ServiceUnavailable):
    code, title = "upstream_unavailable", "A backing service is unavailable"
    headers = {"Retry-After": "5"}


class UpstreamTimeout(ServiceUnavailable):
    status, code, title = 504, "upstream_timeout", "A backing service did not answer in time"


class ClientLeft(DomainError):
    # nginx's "client closed request": logged, never seen by anyone.
    status, code, title = 499, "client_closed_request", "The client closed the connection"


class BadRequestTarget(DomainError):
    code, title = "bad_request_target", "Malformed path or query"


class RouteNotFound(NotFound):
    code, title = "route_not_found", "No such route"


def route_for(path: str) -> str | None:
    for prefix, app in _BY_LENGTH:
        if path == prefix or path.startswith(prefix + "/"):
            return app
    return None


@dataclass(frozen=True)
class Replica:
    """One address of an app: where to dial, the Host header to send, its breaker's name."""

    app: str
    base_url: str
    host: str

    @property
    def circuit(self) -> str:
        return f"{self.app}@{self.base_url}"


class Upstream:
    """One app: its configured URLs, each host name resolved to every address it has (compose
    gives a scaled service one name with several), taken in turn."""

    def __init__(self, name: str, urls: list[str], *, dns_seconds: float = 5.0) -> None:
        self.name = name
        self.urls = urls
        self._dns_seconds = dns_seconds
        self._resolved: list[Replica] = []
        self._resolved_at = float("-inf")
        self._turn = 0

    async def _resolve(self) -> list[Replica]:
        loop = asyncio.get_running_loop()
        if loop.time() - self._resolved_at < self._dns_seconds and self._resolved:
            return self._resolved
        resolved: list[Replica] = []
        for url in self.urls:
            parsed = httpx.URL(url)
            host, port = parsed.host, parsed.port or 80
            try:
                ipaddress.ip_address(host)
                addresses = [host]
            except ValueError:
                try:
                    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                    addresses = sorted({info[4][0] for info in infos})
                except OSError:
                    addresses = [host]  # let the connect fail and say so
            for address in addresses:  # copy_with brackets an IPv6 address itself
                dial = str(parsed.copy_with(host=address)).rstrip("/")
                resolved.append(Replica(self.name, dial, parsed.netloc.decode()))
        self._resolved, self._resolved_at = resolved, loop.time()
        return resolved

    async def attempts(self) -> list[Replica]:
        """Every replica once, starting with the next in turn."""
        replicas = await self._resolve()
        self._turn = (self._turn + 1) % len(replicas)
        return replicas[self._turn :] + replicas[: self._turn]


def _connection_listed(connection: str) -> set[str]:
    """Headers that `Connection` names are hop-by-hop too (RFC 9110, 7.6.1)."""
    return {name.strip().lower() for name in connection.split(",") if name.strip()}


def _forward_headers(request: Request, assertion: str, request_id: str) -> list[tuple[str, str]]:
    connection_listed = _connection_listed(request.headers.get("connection", ""))
    headers = [
        (k, v)
        for k, v in request.headers.items()
        if k not in _DROP_REQUEST and k not in connection_listed
    ]
    client = request.client.host if request.client else "unknown"
    prior = request.headers.get("x-forwarded-for")
    headers += [
        ("x-forwarded-for", f"{prior}, {client}" if prior else client),
        ("x-forwarded-proto", request.url.scheme),
        ("x-forwarded-host", request.headers.get("host", "")),
        ("x-request-id", request_id),
        (ASSERTION_HEADER, assertion),
    ]
    return headers


def _response_headers(upstream: "CIMultiDictProxy[str]") -> list[tuple[bytes, bytes]]:
    connection_listed = _connection_listed(upstream.get("connection", ""))
    return [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in upstream.items()
        if (name := k.lower()) not in HOP_BY_HOP
        and name not in connection_listed
        and name not in _OWN_RESPONSE_HEADERS
    ]


class UpstreamFault(Exception):
    """An answer that counts against a replica's breaker (a 5xx), kept to pass on as it is."""

    def __init__(self, reply: aiohttp.ClientResponse) -> None:
        super().__init__(f"upstream answered {reply.status}")
        self.reply = reply


class UpstreamResponse(StreamingResponse):
    """An app's answer, streamed to the client; its connection goes back to the pool (or is
    closed, if the body was not read to the end) when the response ends, however it ends.

    The release runs here, on the event loop. It must never run in a worker thread (as a sync
    Starlette BackgroundTask would): closing a socket there races uvloop's reads on the loop
    thread, and the gateway died of it with SIGSEGV when clients went away mid-response.
    """

    def __init__(self, reply: aiohttp.ClientResponse) -> None:
        super().__init__(reply.content.iter_any(), status_code=reply.status)
        self.raw_headers = _response_headers(reply.headers)
        self.reply = reply

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.reply.release()


class Hop:
    """The gateway's HTTP client towards the apps.

    Idle pooled connections are dropped well before an app would close them (a third of
    HTTP_KEEPALIVE_SECONDS), so the pool never hands out one that is being closed. A request
    that still meets a closed connection before any answer is sent once more on a fresh one,
    when that is safe: idempotent methods, and POSTs that carry an Idempotency-Key. A
    replica that refuses the connection is skipped, for every method (nothing was sent).
    Each replica has its own circuit breaker, which counts only the replica's faults:
    connections refused or broken, timeouts, 5xx answers; never the client's own errors.
    """

    def __init__(
        self, settings: Settings, *, trace_configs: Sequence[aiohttp.TraceConfig] = ()
    ) -> None:
        self.read_timeout = settings.upstream_read_timeout
        self.longest_wait = settings.order_wait_max_seconds
        self.timeout = timeout = aiohttp.ClientTimeout(
            total=None,
            # Waiting for a free pooled connection and connecting, together.
            connect=settings.upstream_connect_timeout,
            sock_connect=settings.upstream_connect_timeout,
            sock_read=settings.upstream_read_timeout,
        )
        options: dict[str, Any] = {
            "timeout": timeout,
            "auto_decompress": False,
            "skip_auto_headers": ("User-Agent", "Accept-Encoding", "Accept"),
            # A client span per hop, which carries the trace context on to the app.
            "trace_configs": list(trace_configs),
        }
        self.pooled = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.upstream_max_connections,
                limit_per_host=0,
                keepalive_timeout=settings.http_keepalive_seconds / 3,
            ),
            **options,
        )
        # One connection per request, never reused: for the second try after a broken one.
        self.fresh = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True), **options
        )
        self.cache = PublicCache()
        self.breakers = AsyncCircuitBreakerFactory(
            default_threshold=settings.breaker_threshold,
            default_ttl=settings.breaker_ttl_seconds,
            # A request dropped because its client left says nothing about the replica.
            exclude=[asyncio.CancelledError],
        )
        self.breakers.add_listener(_breaker_changed)

    async def close(self) -> None:
        await self.pooled.close()
        await self.fresh.close()

    def timeout_for(self, prefer: str | None) -> aiohttp.ClientTimeout | None:
        """A request that asks the app to wait (`Prefer: wait=N`) may take that much longer."""
        wait = requested_wait(prefer)
        if not wait:
            return None
        return aiohttp.ClientTimeout(
            total=None,
            connect=self.timeout.connect,
            sock_connect=self.timeout.sock_connect,
            sock_read=self.read_timeout + min(wait, self.longest_wait),
        )


BREAKER_STATES = {"closed": 0, "half-opened": 1, "opened": 2}


def _breaker_changed(circuit: str, event_type: str, event: Any) -> None:
    if event_type == "circuit_breaker_created":
        metrics.BREAKER_STATE.labels(circuit).set(0)
    elif event_type == "state_changed":
        metrics.BREAKER_STATE.labels(circuit).set(BREAKER_STATES.get(event.state, 0))


def _retry_safe(request: Request) -> bool:
    return request.method in IDEMPOTENT_METHODS or (
        request.method == "POST" and "idempotency-key" in request.headers
    )


async def forward(
    request: Request,
    *,
    hop: Hop,
    upstream: Upstream,
    signer: IdentitySigner,
    principal: Principal,
    request_id: str,
) -> Response:
    # The path exactly as the client encoded it: decoding and re-encoding could change it.
    path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    target = path.removeprefix(API_PREFIX)
    if query := request.scope.get("query_string", b""):
        target += "?" + query.decode("latin-1")
    # Anyone but staff gets the public answer, so such answers may be shared (cache.py).
    shared = request.method in ("GET", "HEAD") and not principal.is_staff
    if shared and (kept := hop.cache.get(target)) is not None:
        return kept.response(request.headers.get("if-none-match"))
    assertion = signer.sign(user_id=principal.user_id, roles=principal.roles, request_id=request_id)
    headers = _forward_headers(request, assertion, request_id)
    # Bodies are small (the body limit caps them) and read whole first, so that a request can
    # be sent again; the client's own faults (too large, cut short) are settled before any
    # replica is tried, so they never count against one.
    has_body = request.method not in _METHODS_WITHOUT_BODY or "content-length" in request.headers
    body = await request.body() if has_body else None
    send = partial(
        _send,
        method=request.method,
        target=target,
        headers=headers,
        body=body,
        read_limit=hop.timeout_for(request.headers.get("prefer")),
        retry_safe=_retry_safe(request),
    )
    # A client that leaves before its answer takes its request with it: otherwise clients
    # that come and go faster than the app answers pile up unbounded work behind them.
    keep_as = target if shared else None
    forwarding = asyncio.ensure_future(
        _to_a_replica(send, hop, upstream, keep_as, request.headers.get("if-none-match"))
    )
    leaving = asyncio.ensure_future(_client_leaves(request.receive))
    try:
        await asyncio.wait((forwarding, leaving), return_when=asyncio.FIRST_COMPLETED)
    finally:
        leaving.cancel()
        if not forwarding.done():
            forwarding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarding
            raise ClientLeft("The client closed the connection before the answer.")
    return forwarding.result()


async def _client_leaves(receive: Receive) -> None:
    """Returns when the client disconnects (the request body, if any, is already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _to_a_replica(
    send: Callable[[Hop, Replica], Awaitable[aiohttp.ClientResponse]],
    hop: Hop,
    upstream: Upstream,
    keep_as: str | None,
    if_none_match: str | None,
) -> Response:
    last_error: BaseException | None = None
    for replica in await upstream.attempts():
        reply: aiohttp.ClientResponse | None = None
        try:
            async with await hop.breakers.get_breaker(replica.circuit):
                try:
                    reply = await send(hop, replica)
                except UpstreamFault as fault:
                    reply = fault.reply
                    raise
        except OpenedState as exc:
            last_error = exc  # this replica is failing: try the next
            continue
        except UpstreamFault:
            pass  # counted against the replica; its answer goes to the client as it is
        except aiohttp.ServerTimeoutError as exc:
            if not isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise UpstreamTimeout(f"{upstream.name} did not answer in time.") from exc
            last_error = exc  # could not connect in time: nothing was sent
            continue
        except aiohttp.ClientConnectorError as exc:
            last_error = exc  # refused: nothing was sent, so any method may go elsewhere
            continue
        except aiohttp.ClientError as exc:
            last_error = exc  # broken mid-request: the app may have acted on it
            break
        except BaseException:  # cancelled (the client left): give back what arrived
            if reply is not None:
                reply.release()
            raise
        assert reply is not None
        try:
            if keep_as is not None and public_max_age(reply.headers.get("cache-control")):
                body = await reply.read()
                kept = hop.cache.keep(
                    keep_as,
                    status=reply.status,
                    headers=_response_headers(reply.headers),
                    body=body,
                )
                reply.release()
                if kept is not None:
                    return kept.response(if_none_match)
                response = Response(body, status_code=reply.status)
                response.raw_headers = _response_headers(reply.headers)
                return response
            return UpstreamResponse(reply)
        except BaseException:
            reply.release()
            raise
    if isinstance(last_error, OpenedState):
        raise UpstreamUnavailable(
            f"{upstream.name} is failing; not trying it again for a few seconds."
        ) from last_error
    raise UpstreamUnavailable(f"{upstream.name} is not reachable.") from last_error


async def _send(
    hop: Hop,
    replica: Replica,
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
    read_limit: aiohttp.ClientTimeout | None,
    retry_safe: bool,
) -> aiohttp.ClientResponse:
    """One request to one replica: on a pooled connection, then (if that one turned out to be
    closed before any answer, and a resend is safe) once more on a fresh connection."""
    try:
        url = URL(replica.base_url + target, encoded=True)
    except ValueError as exc:
        raise BadRequestTarget("The request's path or query cannot be forwarded.") from exc
    options: dict[str, Any] = {
        "headers": [*headers, ("host", replica.host)],
        "data": body,
        "allow_redirects": False,
    }
    if read_limit is not None:
        options["timeout"] = read_limit
    try:
        reply = await hop.pooled.request(method, url, **options)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        if isinstance(exc, aiohttp.ClientConnectorError) or not retry_safe:
            raise
        log.info("upstream_connection_closed_resending", replica=replica.circuit)
        reply = await hop.fresh.request(method, url, **options)
    if reply.status >= 500:
        raise UpstreamFault(reply)
    return reply
