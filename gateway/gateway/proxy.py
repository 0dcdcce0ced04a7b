"""Forwarding: public path prefix → app, with the caller's identity signed into an assertion."""

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import TypeVar

import aiohttp
import httpx
from fastapi import Request
from multidict import CIMultiDictProxy
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from yarl import URL

from bookstore_shared.bodylimit import PayloadTooLarge
from bookstore_shared.errors import DomainError, NotFound, ServiceUnavailable
from bookstore_shared.identity import ASSERTION_HEADER, IDENTITY_HEADERS, IdentitySigner, Principal

API_PREFIX = "/api"
E = TypeVar("E", bound=BaseException)

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


class BadRequestTarget(DomainError):
    code, title = "bad_request_target", "Malformed path or query"


class RouteNotFound(NotFound):
    code, title = "route_not_found", "No such route"


def route_for(path: str) -> str | None:
    for prefix, app in _BY_LENGTH:
        if path == prefix or path.startswith(prefix + "/"):
            return app
    return None


class Upstream:
    """One app: its configured URLs, each host name resolved to every address it has (compose
    gives a scaled service one name with several), taken in turn."""

    def __init__(self, name: str, urls: list[str], *, dns_seconds: float = 5.0) -> None:
        self.name = name
        self.urls = urls
        self._dns_seconds = dns_seconds
        self._resolved: list[tuple[str, str]] = []  # (base URL to dial, Host header)
        self._resolved_at = float("-inf")
        self._turn = 0

    async def _resolve(self) -> list[tuple[str, str]]:
        loop = asyncio.get_running_loop()
        if loop.time() - self._resolved_at < self._dns_seconds and self._resolved:
            return self._resolved
        resolved: list[tuple[str, str]] = []
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
                resolved.append((dial, parsed.netloc.decode()))
        self._resolved, self._resolved_at = resolved, loop.time()
        return resolved

    async def attempts(self) -> list[tuple[str, str]]:
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


def _cause(exc: BaseException, kind: type[E]) -> E | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def forward(
    request: Request,
    *,
    session: aiohttp.ClientSession,
    upstream: Upstream,
    breakers: AsyncCircuitBreakerFactory,
    signer: IdentitySigner,
    principal: Principal,
    request_id: str,
) -> Response:
    try:
        async with await breakers.get_breaker(upstream.name):
            return await _forward(
                request,
                session=session,
                upstream=upstream,
                signer=signer,
                principal=principal,
                request_id=request_id,
            )
    except OpenedState as exc:
        raise UpstreamUnavailable(
            f"{upstream.name} is failing; not trying it again for a few seconds."
        ) from exc


async def _forward(
    request: Request,
    *,
    session: aiohttp.ClientSession,
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
    assertion = signer.sign(user_id=principal.user_id, roles=principal.roles, request_id=request_id)
    headers = _forward_headers(request, assertion, request_id)
    has_body = request.method not in _METHODS_WITHOUT_BODY or "content-length" in request.headers
    body: AsyncIterator[bytes] | None = request.stream() if has_body else None
    # A refused connection means nothing was sent, so the next replica may be tried; a method
    # that is not idempotent, or whose body stream may be spent, gets one attempt only.
    retry = request.method in IDEMPOTENT_METHODS and body is None

    last_error: Exception | None = None
    for base_url, host in await upstream.attempts():
        try:
            url = URL(base_url + target, encoded=True)
        except ValueError as exc:
            raise BadRequestTarget("The request's path or query cannot be forwarded.") from exc
        try:
            reply = await session.request(
                request.method,
                url,
                headers=[*headers, ("host", host)],
                data=body,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(f"{upstream.name} did not answer in time.") from exc
        except aiohttp.ClientConnectorError as exc:
            last_error = exc
            if retry:
                continue
            break
        except (aiohttp.ClientError, ValueError) as exc:
            if too_large := _cause(exc, PayloadTooLarge):
                raise too_large from None  # the client's body, not the upstream, is at fault
            last_error = exc
            break
        response = StreamingResponse(
            reply.content.iter_any(),
            status_code=reply.status,
            background=BackgroundTask(reply.release),
        )
        response.raw_headers = _response_headers(reply.headers)
        return response
    raise UpstreamUnavailable(f"{upstream.name} is not reachable.") from last_error
