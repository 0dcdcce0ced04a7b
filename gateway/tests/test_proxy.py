from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from bookstore_shared.identity import ASSERTION_HEADER, AUDIENCE
from gateway.proxy import route_for


@pytest.mark.parametrize(
    ("path", "app"),
    [
        ("/api/books", "inventory"),
        ("/api/books/123/stock", "inventory"),
        ("/api/reports/low-stock", "inventory"),
        ("/api/reports/top-sellers", "sales"),
        ("/api/orders/1/saga", "sales"),
        ("/api/cart/items/1", "sales"),
        ("/api/deliveries", "delivery"),
        ("/api/bookshelf", None),
        ("/api/users", None),
        ("/api/auth/me", None),
        ("/books", None),
    ],
)
def test_route_for_picks_the_longest_matching_prefix(path: str, app: str | None) -> None:
    assert route_for(path) == app


async def test_forward_signs_identity_and_strips_what_clients_send(
    client: httpx.AsyncClient, customer_token: str, identity_secret: str
) -> None:
    reply = await client.get(
        "/api/books/abc?q=emma&page=2",
        headers={
            "Authorization": f"Bearer {customer_token}",
            "X-User-Id": "someone-else",
            "X-User-Roles": "admin",
            ASSERTION_HEADER: "forged",
            "X-Forwarded-For": "203.0.113.9",
            "Connection": "keep-alive, x-hop",
            "X-Hop": "drop me",
            "Accept-Language": "en-GB",
        },
    )
    assert reply.status_code == 200, reply.text
    seen: dict[str, Any] = reply.json()
    headers = seen["headers"]
    assert (seen["path"], seen["query"]) == ("/books/abc", "q=emma&page=2")
    assert not {"authorization", "x-user-id", "x-user-roles", "x-hop"} & headers.keys()
    assert headers["accept-language"] == "en-GB"
    assert headers["x-forwarded-for"].startswith("203.0.113.9, ")
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-request-id"] == reply.headers["x-request-id"]
    claims = jwt.decode(
        headers[ASSERTION_HEADER], identity_secret, algorithms=["HS256"], audience=AUDIENCE
    )
    assert claims["roles"] == ["customer"]
    assert claims["rid"] == reply.headers["x-request-id"]


async def test_forward_anonymous_caller_gets_an_assertion_without_subject(
    client: httpx.AsyncClient, identity_secret: str
) -> None:
    seen = (await client.get("/api/books")).json()
    claims = jwt.decode(
        seen["headers"][ASSERTION_HEADER], identity_secret, algorithms=["HS256"], audience=AUDIENCE
    )
    assert "sub" not in claims
    assert claims["roles"] == []


async def test_forward_streams_the_body_and_drops_hop_by_hop_reply_headers(
    client: httpx.AsyncClient, customer_token: str
) -> None:
    payload = "x" * 300_000
    reply = await client.post(
        "/api/orders",
        content=payload,
        headers={"content-type": "text/plain", "Authorization": f"Bearer {customer_token}"},
    )
    assert reply.json()["body"] == payload
    assert reply.headers["x-upstream-public"] == "visible"
    assert "x-upstream-private" not in reply.headers


async def test_forward_with_invalid_bearer_is_unauthorized_not_anonymous(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.get("/api/books", headers={"Authorization": "Bearer not-a-jwt"})
    assert reply.status_code == 401
    assert reply.json()["code"] == "invalid_token"


async def test_forward_to_an_app_that_is_down_is_503_with_retry_after(
    client: httpx.AsyncClient, customer_token: str
) -> None:
    reply = await client.get(
        "/api/deliveries", headers={"Authorization": f"Bearer {customer_token}"}
    )
    assert reply.status_code == 503
    assert reply.headers["retry-after"]
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "upstream_unavailable"


async def test_unknown_api_path_is_a_problem_404(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/bookshelf")
    assert reply.status_code == 404
    assert reply.json()["code"] == "route_not_found"


async def test_ready_reports_the_app_that_is_down(client: httpx.AsyncClient) -> None:
    reply = await client.get("/health/ready")
    assert reply.status_code == 503
    checks = reply.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["upstream:inventory"] == "ok"
    assert checks["upstream:delivery"].startswith("failed")


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/bookshelf"), ("TRACE", "/api/x")])
async def test_path_without_a_rule_is_not_found(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    reply = await client.request(method, path)
    assert reply.status_code == 404
    assert reply.json()["code"] == "route_not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/books/1", "DELETE, GET, HEAD, PATCH"),
        ("DELETE", "/api/orders/1", "GET, HEAD"),
        ("TRACE", "/api/orders", "GET, HEAD, POST"),
    ],
)
async def test_method_a_path_does_not_take_is_405_with_allow(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    reply = await client.request(method, path)
    assert reply.status_code == 405
    assert reply.headers["allow"] == allowed
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "method_not_allowed"


async def test_body_over_one_mebibyte_is_refused_before_forwarding(
    client: httpx.AsyncClient, customer_token: str
) -> None:
    auth = {"Authorization": f"Bearer {customer_token}", "content-type": "text/plain"}
    declared = await client.post("/api/orders", content=b"x" * (1024 * 1024 + 1), headers=auth)
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b"x" * 65_536

    streamed = await client.post("/api/orders", content=chunks(), headers=auth)
    assert streamed.status_code == 413
    just_fits = await client.post("/api/orders", content=b"x" * (1024 * 1024), headers=auth)
    assert just_fits.status_code == 200


async def test_forward_keeps_the_path_as_the_client_encoded_it(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/books/isbn/%0C%20x")
    assert reply.status_code == 200, reply.text
    assert reply.json()["path"] == "/books/isbn/\x0c x"  # the upstream decodes it once
    assert reply.json()["headers"]["host"].startswith("127.0.0.1:")
