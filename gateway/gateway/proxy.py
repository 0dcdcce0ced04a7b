"""Forwarding: public path prefix → app, with the caller's identity signed into an assertion."""

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
from fastapi import Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from bookstore_shared.errors import NotFound, ServiceUnavailable
from bookstore_shared.identity import ASSERTION_HEADER, IDENTITY_HEADERS, IdentitySigner, Principal

API_PREFIX = "/api"

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


class RouteNotFound(NotFound):
    code, title = "route_not_found", "No such route"


def route_for(path: str) -> str | None:
    for prefix, app in _BY_LENGTH:
        if path == prefix or path.startswith(prefix + "/"):
            return app
    return None


@dataclass
class Upstream:
    """One app, possibly several replicas, taken in turn."""

    name: str
    urls: list[str]
    _turn: Iterator[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(self.urls)

    def attempts(self) -> list[str]:
        """Every replica once, starting with the next in turn."""
        first = next(self._turn)
        start = self.urls.index(first)
        return self.urls[start:] + self.urls[:start]


def _forward_headers(request: Request, assertion: str, request_id: str) -> list[tuple[str, str]]:
    connection_listed = {
        h.strip().lower() for h in request.headers.get("connection", "").split(",") if h.strip()
    }
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


def _response_headers(upstream: httpx.Response) -> dict[str, str]:
    connection_listed = {
        h.strip().lower() for h in upstream.headers.get("connection", "").split(",") if h.strip()
    }
    return {
        k: v
        for k, v in upstream.headers.items()
        if k not in HOP_BY_HOP and k not in connection_listed and k not in _OWN_RESPONSE_HEADERS
    }


async def forward(
    request: Request,
    *,
    client: httpx.AsyncClient,
    upstream: Upstream,
    signer: IdentitySigner,
    principal: Principal,
    request_id: str,
) -> Response:
    path = request.url.path.removeprefix(API_PREFIX)
    assertion = signer.sign(user_id=principal.user_id, roles=principal.roles, request_id=request_id)
    headers = _forward_headers(request, assertion, request_id)
    has_body = request.method not in _METHODS_WITHOUT_BODY or "content-length" in request.headers
    body: AsyncIterator[bytes] | None = request.stream() if has_body else None

    last_error: httpx.TransportError | None = None
    for base_url in upstream.attempts():
        outgoing = client.build_request(
            request.method,
            base_url + path,
            params=request.url.query,
            headers=headers,
            content=body,
        )
        try:
            reply = await client.send(outgoing, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"{upstream.name} did not answer in time.") from exc
        except httpx.ConnectError as exc:
            last_error = exc
            if body is not None:  # the body stream may be spent: only bodiless calls move on
                break
            continue
        except httpx.TransportError as exc:
            last_error = exc
            break
        return StreamingResponse(
            reply.aiter_raw(),
            status_code=reply.status_code,
            headers=_response_headers(reply),
            background=BackgroundTask(reply.aclose),
        )
    raise UpstreamUnavailable(f"{upstream.name} is not reachable.") from last_error
