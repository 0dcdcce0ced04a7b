"""The gateway's own /metrics: requests by route template, rate-limit refusals, breakers, and
the metrics token."""

import uuid

import httpx
from pydantic import SecretStr

from bookstore_testing.harness import assert_problem, serve_app
from bookstore_testing.scrape import names, scrape, value
from gateway.config import Settings
from gateway.main import create_app


async def test_forwarded_requests_are_counted_by_route_template_not_raw_path(
    client: httpx.AsyncClient,
    gateway_settings: Settings,
) -> None:
    book_id = uuid.uuid4()
    async with serve_app(create_app(gateway_settings)) as gateway:
        before = await scrape(gateway)
        assert (await gateway.get(f"/api/books/{book_id}")).status_code == 200  # the echo app
        assert (await gateway.get("/api/no-such-route")).status_code == 404
        after = await scrape(gateway)
    labels = {"method": "GET", "handler": "/api/books/{book_id}", "status": "200"}
    assert (
        value(after, "http_requests_total", **labels)
        - value(before, "http_requests_total", **labels)
        == 1
    )
    assert (
        value(
            after,
            "http_request_duration_seconds_count",
            method="GET",
            handler="/api/books/{book_id}",
        )
        >= 1
    )
    counted = {dict(labels)["handler"] for name, labels in after if name == "http_requests_total"}
    assert str(book_id) not in " ".join(counted)
    assert "/api/no-such-route" not in counted  # a path no route has is "none", not itself
    assert {"bookstore_db_pool_in_use", "bookstore_db_pool_size"} <= names(after)


async def test_rate_limit_refusals_are_counted_by_limit(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    settings = gateway_settings.model_copy(update={"rate_limit_per_ip": "1/hour"})
    async with serve_app(create_app(settings)) as gateway:
        before = await scrape(gateway)
        codes = [(await gateway.get("/api/books")).status_code for _ in range(3)]
        after = await scrape(gateway)
    assert codes == [200, 429, 429]
    rejected = "bookstore_ratelimit_rejections_total"
    assert value(after, rejected, limit="ip") - value(before, rejected, limit="ip") == 2


async def test_an_upstream_that_is_down_opens_its_breaker_in_the_metrics(
    gateway_settings: Settings, closed_url: str, customer_token: str
) -> None:
    settings = gateway_settings.model_copy(update={"breaker_threshold": 1})
    ann = {"Authorization": f"Bearer {customer_token}"}
    async with serve_app(create_app(settings)) as gateway:
        codes = [(await gateway.get("/api/deliveries", headers=ann)).status_code for _ in range(2)]
        after = await scrape(gateway)
    assert codes == [503, 503]
    assert value(after, "bookstore_breaker_state", upstream=f"delivery@{closed_url}") == 2


async def test_with_a_metrics_token_a_stranger_is_refused(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    settings = gateway_settings.model_copy(
        update={"metrics_token": SecretStr("s3cret-scraper-token")}
    )
    async with serve_app(create_app(settings)) as gateway:
        anonymous = await gateway.get("/metrics")
        wrong = await gateway.get("/metrics", headers={"Authorization": "Bearer guess"})
        right = await gateway.get(
            "/metrics", headers={"Authorization": "Bearer s3cret-scraper-token"}
        )
    for refused in (anonymous, wrong):
        assert_problem(refused, 401, "metrics_token_required")
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert right.status_code == 200
    assert "http_requests_total" in right.text


async def test_metrics_are_never_served_under_the_api(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    async with serve_app(create_app(gateway_settings)) as gateway:
        reply: httpx.Response = await gateway.get("/api/metrics")
    assert_problem(reply, 404)
