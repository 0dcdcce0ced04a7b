"""The foundation, end to end: the gateway and the three apps as processes, spoken to over HTTP."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bookstore_shared.identity import ASSERTION_HEADER, IdentitySigner
from bookstore_shared.stack import LocalStack
from inventory.seed import CATALOG

pytestmark = pytest.mark.e2e
SignIn = Callable[[str, str], Awaitable[dict[str, str]]]


def assert_problem(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    assert body["status"] == status
    assert body["request_id"] == reply.headers["x-request-id"]
    return body


async def test_register_then_sign_in_then_me(gateway: httpx.AsyncClient, sign_in: SignIn) -> None:
    email = f"reader-{uuid.uuid4().hex[:8]}@example.com"
    registered = await gateway.post(
        "/api/auth/register", json={"email": email, "password": "a-long-passphrase"}
    )
    assert registered.status_code == 201, registered.text
    me = await gateway.get("/api/auth/me", headers=await sign_in(email, "a-long-passphrase"))
    assert me.status_code == 200
    assert (me.json()["email"], me.json()["role"]) == (email, "customer")


@pytest.mark.parametrize(
    ("email", "role"),
    [
        ("admin@bookstore.local", "admin"),
        ("staff@bookstore.local", "staff"),
        ("customer@bookstore.local", "customer"),
    ],
)
async def test_demo_users_sign_in_with_their_roles(
    gateway: httpx.AsyncClient, sign_in: SignIn, email: str, role: str
) -> None:
    me = await gateway.get("/api/auth/me", headers=await sign_in(email))
    assert me.json()["role"] == role


async def test_list_and_search_books_through_the_gateway(gateway: httpx.AsyncClient) -> None:
    everything = (await gateway.get("/api/books?size=100")).json()
    assert everything["count"] >= len(CATALOG)
    found = (await gateway.get("/api/books", params={"q": "pride prejudice"})).json()
    assert found["data"][0]["title"] == "Pride and Prejudice"
    assert "reserved" not in found["data"][0]
    austen = (await gateway.get("/api/books", params={"author": "austen", "size": 50})).json()
    assert {b["author"] for b in austen["data"]} == {"Jane Austen"}
    assert austen["count"] == 4
    assert_problem(await gateway.get("/api/books?size=101"), 422)


async def test_customer_cannot_add_a_book(
    gateway: httpx.AsyncClient, customer: dict[str, str]
) -> None:
    reply = await gateway.post(
        "/api/books",
        json={
            "isbn": "9780140449136",
            "title": "x",
            "author": "y",
            "category": "z",
            "price_cents": 1,
        },
        headers=customer,
    )
    assert_problem(reply, 403)


async def test_staff_adds_a_book_that_everyone_can_then_find(
    gateway: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    body = {
        "isbn": "9780099518471",
        "title": "Brave Zebra Lighthouse",
        "author": "E2E Author",
        "category": "Testing",
        "price_cents": 1234,
        "stock": 3,
    }
    created = await gateway.post("/api/books", json=body, headers=staff)
    assert created.status_code == 201, created.text
    assert created.json()["reserved"] == 0
    found = (await gateway.get("/api/books", params={"q": "zebra lighthouse"})).json()
    assert [b["id"] for b in found["data"]] == [created.json()["id"]]
    assert (await gateway.get(created.headers["location"])).json()["available"] == 3


async def test_app_port_refuses_a_request_without_assertion(stack: LocalStack) -> None:
    async with httpx.AsyncClient(base_url=stack.url("inventory")) as direct:
        assert_problem(await direct.get("/books"), 401)


async def test_app_port_refuses_a_forged_user_header(stack: LocalStack) -> None:
    async with httpx.AsyncClient(base_url=stack.url("sales")) as direct:
        reply = await direct.get(
            "/orders", headers={"X-User-Id": str(uuid.uuid4()), "X-User-Roles": "admin"}
        )
        assert_problem(reply, 401)


async def test_gateway_discards_an_assertion_sent_by_a_client(
    gateway: httpx.AsyncClient, identity_secret: str
) -> None:
    # Even a correctly signed assertion from outside is dropped: the caller stays anonymous.
    smuggled = IdentitySigner(identity_secret).sign(
        user_id=uuid.uuid4(), roles=["admin"], request_id=None
    )
    reply = await gateway.get("/api/orders", headers={ASSERTION_HEADER: smuggled})
    assert_problem(reply, 401)


async def test_malformed_body_is_a_422_problem(
    gateway: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    forwarded = await gateway.post(
        "/api/books", content=b'{"isbn": ', headers={**staff, "content-type": "application/json"}
    )
    assert_problem(forwarded, 422)
    own = await gateway.post("/api/auth/register", json={"email": "nobody"})
    assert_problem(own, 422)


@pytest.mark.parametrize("path", ["/api/nowhere", "/nowhere", "/api/books/not-a-uuid/x"])
async def test_unknown_path_is_a_404_problem(gateway: httpx.AsyncClient, path: str) -> None:
    assert_problem(await gateway.get(path), 404)


async def test_request_id_is_kept_end_to_end(gateway: httpx.AsyncClient) -> None:
    request_id = uuid.uuid4().hex
    reply = await gateway.get(f"/api/books/{uuid.uuid4()}", headers={"X-Request-ID": request_id})
    assert reply.headers["x-request-id"] == request_id
    assert assert_problem(reply, 404)["request_id"] == request_id


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


async def test_docs_merge_every_app_into_one_document(gateway: httpx.AsyncClient) -> None:
    spec = (await gateway.get("/openapi.json")).json()
    assert {
        "/api/auth/token",
        "/api/books",
        "/api/books/{book_id}",
        "/api/orders/{order_id}",
        "/api/deliveries/{delivery_id}",
    } <= spec["paths"].keys()
    assert not [p for p in spec["paths"] if not p.startswith(("/api/", "/health/"))]
    schemas = spec["components"]["schemas"]
    dangling = {r for r in _refs(spec) if r.removeprefix("#/components/schemas/") not in schemas}
    assert dangling == set()
    page = await gateway.get("/docs")
    assert page.status_code == 200
    assert "swagger" in page.text.lower()
