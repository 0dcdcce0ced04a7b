"""The gateway: the one URL clients use. It authenticates, forwards and serves the merged docs."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import structlog
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request
from opentelemetry.instrumentation.aiohttp_client import create_trace_config

from bookstore_shared import health
from bookstore_shared.app import REQUEST_ID_HEADER
from bookstore_shared.bodylimit import BodyLimitMiddleware
from bookstore_shared.db import Database
from bookstore_shared.errors import PROBLEM_RESPONSES, document_problems, install_error_handlers
from bookstore_shared.identity import IdentitySigner
from bookstore_shared.logging import configure_logging
from bookstore_shared.retention import Retention, pruning
from bookstore_shared.telemetry import Telemetry
from gateway.config import Settings, get_settings
from gateway.docs import MergedDocs, install_docs_pages
from gateway.guard import GatewayGuard
from gateway.live import router as live_router
from gateway.mail import Mailer
from gateway.models import PasswordReset, RefreshToken
from gateway.proxy import Hop, Upstream
from gateway.ratelimit import RateLimits
from gateway.routes import router as auth_router
from gateway.routes import users as users_router
from gateway.security import Identities, Passwords, Tokens
from gateway.seed import ensure_admin


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


log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(service="gateway", level=settings.log_level, json=settings.log_json)
    telemetry = Telemetry.from_settings("gateway", settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database.from_settings(settings)
        telemetry.watch_database(db)
        # Readiness probes and the apps' OpenAPI documents (cold paths); forwarding, the hot
        # path, uses the Hop's aiohttp sessions: several times cheaper per request here.
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.upstream_read_timeout, connect=settings.upstream_connect_timeout
            ),
            follow_redirects=False,
        )
        # A client span per hop, whose context travels on in the request's `traceparent`.
        hop = Hop(
            settings,
            trace_configs=[create_trace_config(tracer_provider=telemetry.tracer_provider)]
            if telemetry.enabled
            else [],
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
        app.state.hop = hop
        app.state.upstreams = upstreams
        app.state.signer = signer
        tokens = Tokens(settings)
        app.state.tokens = tokens
        app.state.passwords = Passwords(concurrency=settings.password_hash_concurrency)
        app.state.identities = Identities(
            db=db, tokens=tokens, cache_seconds=settings.auth_cache_seconds
        )
        app.state.rate_limits = RateLimits(settings)
        mailer = Mailer(settings)
        app.state.mailer = mailer
        if not mailer.enabled:
            log.warning(
                "mail_disabled", detail="SMTP_URL is not set: password resets cannot be mailed"
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
        tokens_table = RefreshToken.__table__
        expired_tokens = Retention(
            table=tokens_table,  # type: ignore[arg-type]
            age=tokens_table.c.expires_at,
            keep=timedelta(days=settings.retention_refresh_tokens_days),
        )
        resets_table = PasswordReset.__table__
        expired_resets = Retention(
            table=resets_table,  # type: ignore[arg-type]
            age=resets_table.c.expires_at,
            keep=timedelta(days=settings.retention_password_resets_days),
        )
        every_seconds = settings.retention_sweep_seconds
        if admin := await ensure_admin(db, app.state.passwords, settings):
            log.info("admin_account", outcome=admin)
        try:
            async with pruning(db, [expired_tokens, expired_resets], every_seconds=every_seconds):
                yield
        finally:
            await mailer.close()
            await hop.close()
            await client.aclose()
            await db.dispose()
            telemetry.shutdown()

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
    app.state.telemetry = telemetry
    install_error_handlers(app)
    document_problems(app)
    app.include_router(health.router)
    app.include_router(auth_router)
    app.include_router(users_router)
    app.include_router(live_router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> dict[str, Any]:
        spec: dict[str, Any] = await request.app.state.docs.spec()
        return spec

    install_docs_pages(app, title="Bookstore API")

    # Starlette runs the last-added middleware first: request id, body limit, then the guard.
    app.add_middleware(GatewayGuard)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        larger={("POST", "/api/books/import"): settings.import_max_body_bytes},
    )
    app.add_middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER)
    telemetry.instrument_app(app)  # outermost: spans and metrics see every answer
    return app
