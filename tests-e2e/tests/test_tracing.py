"""One order is one trace: gateway → sales → broker → inventory, sales and delivery consumers.

The four apps run in this process, each with its own tracer provider (as each would in its own
process) and an in-memory exporter beside it; the gateway reaches the apps over real sockets
and the messages go through the real broker, so the context crosses HTTP and RabbitMQ headers.
"""

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import delivery
import delivery.config
import delivery.main
import gateway
import gateway.config
import gateway.main
import inventory
import inventory.config
import inventory.main
import sales
import sales.config
import sales.main
from bookstore_testing.harness import assertion_headers, listening, migrate
from bookstore_testing.infra import Databases, Infra
from bookstore_testing.shop import Shop, eventually, order_body, random_isbn

pytestmark = pytest.mark.e2e

APPS = {"inventory": inventory, "sales": sales, "delivery": delivery, "gateway": gateway}
Exporters = dict[str, InMemorySpanExporter]


class TracedStack:
    def __init__(self, urls: dict[str, str], exporters: Exporters, secret: str) -> None:
        self.urls = urls
        self.exporters = exporters
        self.secret = secret

    def spans(self, app: str) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporters[app].get_finished_spans())


@pytest.fixture(scope="module")
async def traced(
    databases: Databases, infra: Infra, broker_namespace: str
) -> AsyncIterator[TracedStack]:
    database_url = await databases.create("traces")
    secret = secrets.token_hex(32)
    common: dict[str, Any] = {
        "database_url": database_url,
        "amqp_url": infra.amqp_url,
        "broker_namespace": f"{broker_namespace}-traces",  # one of STACK_PURPOSES
        "identity_secret": secret,
        "db_pool_size": 4,
        "log_json": False,
        "log_level": "WARNING",
    }
    for package in APPS.values():
        await migrate(Path(package.__file__).parent / "migrations", database_url)
    urls: dict[str, str] = {}
    exporters: Exporters = {}
    async with AsyncExitStack() as running:
        for name in ("inventory", "sales", "delivery", "gateway"):
            package = APPS[name]
            extra = (
                {f"{app}_url": urls[app] for app in ("inventory", "sales", "delivery")}
                if name == "gateway"
                else {}
            )
            # No exporter is configured, so spans would not be recorded: record them all.
            with pytest.MonkeyPatch.context() as env:
                env.setenv("OTEL_TRACES_SAMPLER", "always_on")
                app = package.main.create_app(package.config.Settings(**common, **extra))
            exporters[name] = InMemorySpanExporter()
            app.state.telemetry.tracer_provider.add_span_processor(
                SimpleSpanProcessor(exporters[name])
            )
            urls[name] = await running.enter_async_context(listening(app))
        yield TracedStack(urls, exporters, secret)


async def _book(stack: TracedStack) -> str:
    staff = assertion_headers(stack.secret, user_id=uuid.uuid4(), roles=["staff"])
    async with httpx.AsyncClient(base_url=stack.urls["inventory"]) as inventory_app:
        reply = await inventory_app.post(
            "/books",
            json={
                "isbn": random_isbn(),
                "title": "Traced",
                "author": "A. Tracer",
                "category": "Testing",
                "price_cents": 1200,
                "stock": 5,
            },
            headers=staff,
        )
    assert reply.status_code == 201, reply.text
    book_id: str = reply.json()["id"]
    return book_id


def _consumed(spans: tuple[ReadableSpan, ...], order_id: str) -> dict[str, ReadableSpan]:
    """The order's messages each app handled, by message type."""
    return {
        str(span.attributes["bookstore.message_type"]): span
        for span in spans
        if span.kind == SpanKind.CONSUMER
        and span.attributes
        and span.attributes.get("messaging.message.conversation_id") == order_id
    }


async def test_an_order_is_one_trace_from_the_clients_traceparent_through_every_app(
    traced: TracedStack,
) -> None:
    book_id = await _book(traced)
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    async with httpx.AsyncClient(base_url=traced.urls["gateway"], timeout=30) as client:
        customer = await Shop(client, staff={}).new_customer()  # no staff through this one
        reply = await client.post(
            "/api/orders",
            json=order_body([(book_id, 1)]),
            headers={
                **customer,
                "Prefer": "wait=15",
                "traceparent": f"00-{trace_id}-{client_span}-01",
            },
        )
    assert reply.status_code == 201, reply.text
    order = reply.json()
    assert order["status"] == "confirmed", order
    order_id = order["id"]

    expected = {
        "inventory": {"ReserveStock", "CommitStock"},
        # The payment is authorised inside the StockReserved handler: no message of its own.
        "sales": {"StockReserved", "DeliveryScheduled", "StockCommitted"},
        "delivery": {"ScheduleDelivery"},
    }

    async def every_step_handled() -> bool:
        return all(
            want <= _consumed(traced.spans(app), order_id).keys() for app, want in expected.items()
        )

    await eventually(every_step_handled, within=15, what="every step's consumer span")

    # The gateway adopted the client's trace: its server span is the client span's child,
    # named by the route template, and its hop to sales is a client span in the same trace.
    (server,) = [
        s
        for s in traced.spans("gateway")
        if s.kind == SpanKind.SERVER and s.name == "POST /api/orders"
    ]
    assert format(server.context.trace_id, "032x") == trace_id
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == client_span
    assert server.resource.attributes["service.name"] == "gateway"
    assert any(
        s.kind == SpanKind.CLIENT and s.context.trace_id == server.context.trace_id
        for s in traced.spans("gateway")
    )
    (placed,) = [
        s for s in traced.spans("sales") if s.kind == SpanKind.SERVER and s.name == "POST /orders"
    ]
    assert placed.context.trace_id == server.context.trace_id
    assert placed.resource.attributes["service.name"] == "sales"
    # Every message of the order, in every app, continues that same trace; each handler's
    # statements are spans of it too.
    for app, want in expected.items():
        consumed = _consumed(traced.spans(app), order_id)
        for message_type in want:
            span = consumed[message_type]
            assert format(span.context.trace_id, "032x") == trace_id, (app, message_type)
            assert span.resource.attributes["service.name"] == app
        statements = [
            s
            for s in traced.spans(app)
            if s.kind == SpanKind.CLIENT
            and s.parent is not None
            and s.parent.span_id in {c.context.span_id for c in consumed.values()}
        ]
        assert statements, f"{app}: no database span under its message handlers"


async def test_probes_and_scrapes_make_no_spans(traced: TracedStack) -> None:
    async with httpx.AsyncClient(base_url=traced.urls["sales"]) as sales_app:
        before = len(traced.spans("sales"))
        assert (await sales_app.get("/health/live")).status_code == 200
        assert (await sales_app.get("/metrics")).status_code == 200
    assert [s.name for s in traced.spans("sales")[before:] if s.kind == SpanKind.SERVER] == []
