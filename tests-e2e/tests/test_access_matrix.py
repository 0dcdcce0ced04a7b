"""Every public route for every kind of caller, built from the merged OpenAPI document.

A route that appears in the docs without a rule in the gateway's table fails here, and so
does a rule for a route that no longer exists. Then each cell is checked: refused callers get
401 (anonymous) or 403 (wrong role); a customer asking for another customer's order or
delivery gets 404, as if it did not exist. Bodies are empty and ids made up wherever a call
would change something, so the matrix changes nothing but what it creates itself.
"""

import uuid
from typing import Any

import pytest

from bookstore_testing.shop import Shop
from gateway.access import RULES, Rule

pytestmark = pytest.mark.e2e
CALLERS = ("anonymous", "owner", "other_customer", "staff", "admin")
OWNED = ("{order_id}", "{delivery_id}")


@pytest.fixture(scope="module")
async def spec(shop: Shop) -> dict[str, Any]:
    document: dict[str, Any] = (await shop.gateway.get("/openapi.json")).json()
    return document


def operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_every_documented_route_has_a_rule_and_every_rule_a_route(spec: dict[str, Any]) -> None:
    documented = operations(spec)
    assert documented - RULES.keys() == set(), "routes without a rule"
    assert RULES.keys() - documented == set(), "rules for routes that do not exist"


@pytest.fixture(scope="module")
async def callers(shop: Shop, sign_in: Any) -> dict[str, dict[str, str]]:
    return {
        "anonymous": {},
        "owner": await shop.new_customer(),
        "other_customer": await shop.new_customer(),
        "staff": await sign_in("staff@bookstore.local"),
        "admin": await sign_in("admin@bookstore.local"),
    }


@pytest.fixture(scope="module")
async def ids(shop: Shop, callers: dict[str, dict[str, str]]) -> dict[str, str]:
    book = await shop.new_book(stock=5)
    order = (await shop.place_order(callers["owner"], [(book, 1)])).json()
    deliveries = (
        await shop.gateway.get(f"/api/deliveries?order_id={order['id']}", headers=callers["owner"])
    ).json()
    isbn = (await shop.gateway.get(f"/api/books/{book}")).json()["isbn"]
    review = await shop.gateway.post(
        f"/api/books/{book}/reviews", json={"rating": 4, "body": "Good."}, headers=callers["owner"]
    )
    return {
        "{book_id}": book,
        "{review_id}": review.json()["id"],
        "{isbn}": isbn,
        "{order_id}": order["id"],
        "{delivery_id}": deliveries["data"][0]["id"],
    }


def expected(rule: Rule, caller: str, method: str, path: str) -> str:
    if rule == Rule.PUBLIC:
        return "allowed"
    if caller == "anonymous":
        return "401"
    if rule == Rule.USER:
        if any(part in path for part in OWNED):
            if caller == "other_customer":
                return "404"
            if method == "GET":
                return "200"  # the owner, and staff, see the real thing
        return "allowed"
    if rule == Rule.STAFF:
        return "allowed" if caller in ("staff", "admin") else "403"
    return "allowed" if caller == "admin" else "403"


def outcome(status: int, want: str) -> str:
    if want == "200":
        return str(status)
    return str(status) if status in (401, 403, 404) else "allowed"


async def test_every_route_answers_every_caller_as_its_rule_says(
    shop: Shop, spec: dict[str, Any], callers: dict[str, dict[str, str]], ids: dict[str, str]
) -> None:
    mismatches = []
    for method, template in sorted(operations(spec)):
        rule = RULES[(method, template)]
        path = template
        for placeholder, value in ids.items():
            # Reads use the real resource; writes a made-up id, so nothing real changes.
            path = path.replace(
                placeholder, value if method == "GET" or placeholder in OWNED else str(uuid.uuid4())
            )
        path = path.replace("{key_id}", str(uuid.uuid4())).replace("{user_id}", str(uuid.uuid4()))
        for caller in CALLERS:
            body: dict[str, Any] = {}
            if method in ("POST", "PUT", "PATCH"):
                body = {"data": {}} if template == "/api/auth/token" else {"json": {}}
            if template.endswith("/cancel") and caller != "other_customer":
                continue  # a real cancel changes the order; its refusal is what matters here
            # Only the status is read: an event stream's body never ends.
            async with shop.gateway.stream(
                method, path, headers=callers[caller], timeout=30, **body
            ) as reply:
                status = reply.status_code
            want = expected(rule, caller, method, template)
            if outcome(status, want) != want and not (want == "allowed" and status == 404):
                mismatches.append((method, template, caller, want, status))
    assert mismatches == []
