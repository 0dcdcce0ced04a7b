"""Traces and metrics, set up the same way in every app (the gateway included).

Traces (OpenTelemetry): each app has its own `TracerProvider`, named after the app
(`service.name`). Spans come from maintained instrumentations: ASGI (server spans; an
incoming `traceparent` is adopted), SQLAlchemy (one span a statement, when spans are
recorded; the busy paths' statements, run by asyncpg itself, make the same spans) and, in
the gateway, aiohttp (the hop to an app, which carries the context on).
Messages carry the context in their headers (`inject_context` / `extract_context`), so one
order is one trace across the broker. Spans are exported over OTLP/HTTP when
`OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; otherwise they are not recorded (see
`NOT_RECORDED`), their ids only go to the logs (`trace_id`, `span_id`) and on to the next
hop. The rest of the standard `OTEL_*` variables apply as the SDK reads them
(`OTEL_TRACES_SAMPLER`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`...);
`OTEL_SDK_DISABLED=true` turns tracing off altogether, instrumentations included.

Metrics (Prometheus): `GET /metrics` on the app's own port, never through the gateway's /api.
Requests by method, route template and status, with a latency histogram, are kept per app;
the domain's own metrics (`bookstore_shared.metrics`) are the process's, which is the replica's.
With `METRICS_TOKEN` set, /metrics asks for it as a bearer token.
"""

import hmac
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bookstore_shared import metrics
from bookstore_shared.db import Database
from bookstore_shared.errors import problem_response
from bookstore_shared.settings import ServiceSettings

log = structlog.get_logger(__name__)
METRICS_PATH = "/metrics"
# Not traced nor counted: probes and scrapes, many a minute, say nothing about the traffic.
UNWATCHED_PATHS = ("/health/live", "/health/ready", METRICS_PATH)
# Where a route template is left for the metrics and the span name when routing happens
# outside FastAPI's router (the gateway forwards from a middleware).
ROUTE_KEY = "route_template"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

NOT_RECORDED = ParentBased(ALWAYS_OFF)

Refresh = Callable[[], Awaitable[None]]


def _enabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def _exporting() -> bool:
    return _enabled() and bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def _recording() -> bool:
    """Whether spans may be recorded at all: exported, or sampled in for some other reader."""
    return _exporting() or (_enabled() and bool(os.environ.get("OTEL_TRACES_SAMPLER")))


def tracing_mode() -> str:
    """What this environment makes of tracing, in words (the bench prints it)."""
    if not _enabled():
        return "no tracing"
    if _exporting():
        return "tracing, spans exported over OTLP"
    return "tracing, spans recorded" if _recording() else "tracing, spans not recorded"


def route_template(scope: Scope) -> str | None:
    """The route template this request matched, where the router is not FastAPI's."""
    state = scope.get("state") or {}
    template = state.get(ROUTE_KEY)
    return template if isinstance(template, str) else None


def set_route_template(scope: Scope, template: str) -> None:
    """Name the request's route (metrics label, server span name) for a request routed by hand."""
    scope.setdefault("state", {})[ROUTE_KEY] = template


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """A server span's first name: its method (or `WEBSOCKET`); `RequestMetrics` adds the
    route of an HTTP request once known."""
    return scope.get("method") or scope["type"].upper(), {}


def inject_context(carrier: dict[str, str]) -> dict[str, str]:
    """The current trace context (W3C `traceparent`, `tracestate`, baggage) into `carrier`."""
    propagate.inject(carrier)
    return carrier


def extract_context(carrier: Mapping[str, Any] | None) -> Any:
    """The trace context a message or request carried (empty: a new trace starts)."""
    text = {k: v for k, v in (carrier or {}).items() if isinstance(v, str)}
    return propagate.extract(text)


class RequestMetrics:
    """Counts every HTTP answer by method, route template and status, and times it.

    A pure ASGI middleware rather than a general instrumentator: the template is read after
    the request was routed (FastAPI leaves the route it matched in the scope; the gateway names
    the access rule's), so nothing is matched twice, and no request or response object is built.
    On the gateway's cached reads that is a quarter of its CPU saved. A path no route has is
    counted as `none`, so scanners cannot grow the label set."""

    def __init__(self, app: ASGIApp, *, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self._requests = requests
        self._latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNWATCHED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before it starts its answer

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # The server span (traced and recorded) ends with the answer: named now.
                span = trace.get_current_span()
                if span.is_recording() and (handler := _handler(scope)) != "none":
                    span.update_name(f"{scope['method']} {handler}")
                    span.set_attribute("http.route", handler)
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            handler, method = _handler(scope), scope["method"]
            self._requests.labels(method, handler, str(status)).inc()
            self._latency.labels(method, handler).observe(time.perf_counter() - started)


def _handler(scope: Scope) -> str:
    """The route template the request matched, once routed; `none` for no route."""
    template = route_template(scope) or getattr(scope.get("route"), "path", None)
    return template if isinstance(template, str) else "none"


class Telemetry:
    """One app's tracer provider and request metrics, and its /metrics page."""

    def __init__(self, service: str, *, metrics_token: str | None = None) -> None:
        # OTEL_SDK_DISABLED=true: the provider hands out no-op tracers; nothing is hooked.
        self.enabled = _enabled()
        exporting = _exporting()
        # Spans not recorded are made, ids and all, for the logs and the traceparent sent on,
        # but keep no attributes and end up nowhere (a caller's sampled traceparent is still
        # followed).
        self.recording = _recording()
        sampler = None if self.recording else NOT_RECORDED
        self.tracer_provider = TracerProvider(
            # OTEL_RESOURCE_ATTRIBUTES adds to it; OTEL_SERVICE_NAME renames the app.
            resource=Resource.create(
                {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service}
            ),
            sampler=sampler,
        )
        if exporting:
            # Imported here: the exporter pulls in protobuf, which an app not exporting skips.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.tracer_provider.get_tracer("bookstore")
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics_token = metrics_token
        self._refreshers: list[Refresh] = []
        self._requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ("method", "handler", "status"),
            registry=self.registry,
        )
        self._latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ("method", "handler"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    @classmethod
    def from_settings(cls, service: str, settings: ServiceSettings) -> "Telemetry":
        token = settings.metrics_token
        return cls(service, metrics_token=token.get_secret_value() if token else None)

    def instrument_app(self, app: FastAPI) -> None:
        """Server spans, request metrics and GET /metrics for `app` (call once its routes and
        middleware are in place: both go outside them)."""
        app.add_middleware(RequestMetrics, requests=self._requests, latency=self._latency)
        if self.enabled:
            # The ASGI instrumentation itself, not FastAPI's: that one matches the path against
            # every route again to name the span; `RequestMetrics` names it once routed.
            app.add_middleware(
                OpenTelemetryMiddleware,
                tracer_provider=self.tracer_provider,
                meter_provider=NoOpMeterProvider(),
                excluded_urls=",".join(UNWATCHED_PATHS),
                exclude_spans=["receive", "send"],
                default_span_details=_span_details,
            )
        app.add_api_route(METRICS_PATH, self._metrics_page, include_in_schema=False)

    def watch_database(self, db: Database) -> None:
        """The pool's gauges (connections in use read at each scrape), and a span for every
        statement (SQLAlchemy's own instrumentation) when spans are recorded: unrecorded, a
        statement's span would carry nothing anyone reads (the logs take their ids from the
        request's or message's span), at a cost per query."""
        metrics.DB_POOL_SIZE.set(db.capacity)
        pool: Any = db.engine.pool

        async def pool_in_use() -> None:
            metrics.DB_POOL_IN_USE.set(pool.checkedout())

        self.refresh_before_scrape(pool_in_use)
        if self.recording:
            statements = trace.get_tracer(
                "opentelemetry.instrumentation.sqlalchemy", tracer_provider=self.tracer_provider
            )
            EngineTracer(  # type: ignore[no-untyped-call]
                statements,
                db.engine.sync_engine,
                NoOpMeterProvider().get_meter("sqlalchemy").create_up_down_counter("unused"),
            )
            db.tracer = statements  # the busy paths' statements, run by asyncpg itself

    def refresh_before_scrape(self, refresh: Refresh) -> None:
        """Run `refresh` (say, a gauge read from the database) before each /metrics answer."""
        self._refreshers.append(refresh)

    async def _metrics_page(self, request: Request) -> Response:
        if self._metrics_token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self._metrics_token}".encode()):
                return problem_response(
                    401,
                    code="metrics_token_required",
                    title="Metrics token required",
                    detail="GET /metrics takes the metrics token as a bearer token.",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        # The gauges read from the database; their statements make no spans of their own.
        with suppress_instrumentation():
            for refresh in self._refreshers:
                try:
                    await refresh()
                except Exception as exc:  # the page still answers, with the last values read
                    log.warning("metrics_refresh_failed", error=repr(exc))
        body = generate_latest(self.registry) + generate_latest(REGISTRY)
        return Response(content=body, media_type=CONTENT_TYPE_LATEST)

    def shutdown(self) -> None:
        """Send what is still buffered (the batch exporter) and stop."""
        self.tracer_provider.shutdown()
