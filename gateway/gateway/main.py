"""The gateway: the one URL clients use. It authenticates, forwards and serves the merged docs."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import httpx
from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from purgatory import AsyncCircuitBreakerFactory
from starlette.responses import Response

from bookstore_shared import health
from bookstore_shared.app import REQUEST_ID_HEADER
from bookstore_shared.bodylimit import BodyLimitMiddleware
from bookstore_shared.db import Database
from bookstore_shared.errors import PROBLEM_RESPONSES, install_error_handlers
from bookstore_shared.identity import CurrentPrincipal, IdentitySigner
from bookstore_shared.logging import configure_logging
from gateway.config import Settings, get_settings
from gateway.docs import MergedDocs
from gateway.guard import GatewayGuard
from gateway.proxy import RouteNotFound, Upstream, forward, route_for
from gateway.ratelimit import RateLimits
from gateway.routes import router as auth_router
from gateway.routes import users as users_router
from gateway.security import Identities, Passwords, Tokens

PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _upstream_check(client: httpx.AsyncClient, upstream: Upstream) -> health.Check:
    async def check() -> None:
        for url in upstream.urls:
            try:
                if (await client.get(f"{url}/health/live")).status_code == 200:
                    return
            except httpx.HTTPError:
                continue
        raise ConnectionError(f"no replica of {upstream.name} answers")

    return check


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(service="gateway", level=settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url, pool_size=settings.db_pool_size)
        # Readiness probes and the apps' OpenAPI documents; forwarding uses proxy_session.
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.upstream_read_timeout, connect=settings.upstream_connect_timeout
            ),
            follow_redirects=False,
        )
        # The hot path (forwarding) uses aiohttp: several times cheaper per request than
        # httpx's async client here (see the README's gateway figures); httpx serves the
        # cold paths (readiness probes, fetching the apps' OpenAPI documents).
        proxy_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=500, limit_per_host=0, ttl_dns_cache=10),
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=settings.upstream_connect_timeout,
                sock_read=settings.upstream_read_timeout,
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )
        upstreams = {
            name: Upstream(name, urls, dns_seconds=settings.upstream_dns_seconds)
            for name, urls in settings.upstream_urls().items()
        }
        signer = IdentitySigner(
            settings.identity_secret.get_secret_value(), ttl_seconds=settings.identity_ttl_seconds
        )
        app.state.db = db
        app.state.client = client
        app.state.proxy_session = proxy_session
        app.state.upstreams = upstreams
        app.state.signer = signer
        tokens = Tokens(settings)
        app.state.tokens = tokens
        app.state.passwords = Passwords(concurrency=settings.password_hash_concurrency)
        app.state.identities = Identities(
            db=db, tokens=tokens, cache_seconds=settings.auth_cache_seconds
        )
        app.state.rate_limits = RateLimits(settings)
        app.state.breakers = AsyncCircuitBreakerFactory(
            default_threshold=settings.breaker_threshold, default_ttl=settings.breaker_ttl_seconds
        )
        app.state.docs = MergedDocs(
            app=app,
            client=client,
            upstreams=upstreams,
            signer=signer,
            cache_seconds=settings.openapi_cache_seconds,
        )
        app.state.health_checks = {
            "database": db.ping,
            **{f"upstream:{n}": _upstream_check(client, u) for n, u in upstreams.items()},
        }
        try:
            yield
        finally:
            await proxy_session.close()
            await client.aclose()
            await db.dispose()

    app = FastAPI(
        title="Bookstore API",
        description=(
            "The public API of the bookstore: catalog, cart, orders, deliveries and accounts. "
            "Every error is an RFC 9457 problem document."
        ),
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses=PROBLEM_RESPONSES,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(auth_router)
    app.include_router(users_router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> dict[str, Any]:
        spec: dict[str, Any] = await request.app.state.docs.spec()
        return spec

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Bookstore API")

    @app.api_route("/api/{path:path}", methods=PROXY_METHODS, include_in_schema=False)
    async def proxy(request: Request, principal: CurrentPrincipal) -> Response:
        app_name = route_for(request.url.path)
        if app_name is None:
            raise RouteNotFound(f"No route for {request.url.path}.")
        return await forward(
            request,
            session=request.app.state.proxy_session,
            upstream=request.app.state.upstreams[app_name],
            breakers=request.app.state.breakers,
            signer=request.app.state.signer,
            principal=principal,
            request_id=correlation_id.get() or "",
        )

    # Starlette runs the last-added middleware first: request id, body limit, then the guard.
    app.add_middleware(GatewayGuard)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER)
    return app
